package ecrfake

// The OCI distribution-spec v1.1 referrers API, which ECR supports (since
// 2024-06) and distribution v3.1.2 does not: GET /v2/<name>/referrers/<digest>
// and the OCI-Subject header on manifest PUTs whose manifest has a subject.
//
// The index lives in emulator memory (dataPlane.refs), one entry per
// registry (account/region) and repository. It is not persisted: an entry is
// built lazily, by scanning the repository's manifests in storage, the first
// time the repository's referrers are listed, and then kept up to date by
// manifest PUTs and DELETEs by digest. So an emulator restarted on the same
// StorageDir lists the referrers pushed before the restart, and
// DeleteRepository only has to forget the entry.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// referrerIndex maps, per repository, subject digests to the descriptors of
// the manifests that refer to them.
type referrerIndex struct {
	mu    sync.Mutex
	repos map[string]*repoReferrers // account/region/name
}

// repoReferrers is one repository's referrers. Until loaded, nothing is
// recorded: the first listing scans storage, which then holds every
// manifest pushed so far.
type repoReferrers struct {
	mu        sync.Mutex
	loaded    bool
	bySubject map[digest.Digest]map[digest.Digest]ocispec.Descriptor // subject -> referrer -> descriptor
	subjectOf map[digest.Digest]digest.Digest                        // referrer -> subject
}

func referrerKey(account, region, name string) string {
	return registryKey(account, region) + "/" + name
}

func (x *referrerIndex) entry(key string) *repoReferrers {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.repos == nil {
		x.repos = map[string]*repoReferrers{}
	}
	rr := x.repos[key]
	if rr == nil {
		rr = &repoReferrers{}
		x.repos[key] = rr
	}
	return rr
}

// forget drops a repository's entry (the repository was deleted); the next
// listing scans storage again.
func (x *referrerIndex) forget(key string) {
	rr := x.entry(key)
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.reset()
}

func (rr *repoReferrers) reset() {
	rr.loaded = false
	rr.bySubject = map[digest.Digest]map[digest.Digest]ocispec.Descriptor{}
	rr.subjectOf = map[digest.Digest]digest.Digest{}
}

// add records referrer desc of subject; the caller holds rr.mu.
func (rr *repoReferrers) add(subject digest.Digest, desc ocispec.Descriptor) {
	if old, ok := rr.subjectOf[desc.Digest]; ok && old != subject {
		delete(rr.bySubject[old], desc.Digest)
	}
	if rr.bySubject[subject] == nil {
		rr.bySubject[subject] = map[digest.Digest]ocispec.Descriptor{}
	}
	rr.bySubject[subject][desc.Digest] = desc
	rr.subjectOf[desc.Digest] = subject
}

// remove forgets manifest dg; the caller holds rr.mu.
func (rr *repoReferrers) remove(dg digest.Digest) {
	subject, ok := rr.subjectOf[dg]
	if !ok {
		return
	}
	delete(rr.subjectOf, dg)
	delete(rr.bySubject[subject], dg)
	if len(rr.bySubject[subject]) == 0 {
		delete(rr.bySubject, subject)
	}
}

// recorded runs f on the entry if it is loaded; an entry not loaded yet
// picks the change up from storage when it is.
func (x *referrerIndex) recorded(key string, f func(*repoReferrers)) {
	rr := x.entry(key)
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.loaded {
		f(rr)
	}
}

// manifestFields are the fields of an image manifest or index the referrers
// API reads.
type manifestFields struct {
	MediaType    string                      `json:"mediaType"`
	ArtifactType string                      `json:"artifactType"`
	Config       *struct{ MediaType string } `json:"config"`
	Manifests    json.RawMessage             `json:"manifests"`
	Subject      *struct{ Digest string }    `json:"subject"`
	Annotations  map[string]string           `json:"annotations"`
}

// parseReferrer returns the subject of a manifest and the descriptor that
// lists it among the subject's referrers; ok is false when the manifest has
// no (valid) subject. contentType is the media type the manifest was pushed
// or is stored with, for manifests without a mediaType field.
func parseReferrer(contentType string, body []byte) (subject digest.Digest, desc ocispec.Descriptor, ok bool) {
	var m manifestFields
	if err := json.Unmarshal(body, &m); err != nil || m.Subject == nil {
		return "", desc, false
	}
	subject, err := digest.Parse(m.Subject.Digest)
	if err != nil {
		return "", desc, false
	}
	mt := m.MediaType
	if mt == "" {
		mt, _, _ = mime.ParseMediaType(contentType)
	}
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
		if m.Manifests != nil {
			mt = ocispec.MediaTypeImageIndex
		}
	}
	at := m.ArtifactType
	if at == "" && mt != ocispec.MediaTypeImageIndex && m.Config != nil {
		// An image manifest without artifactType is listed with its config's media type.
		at = m.Config.MediaType
	}
	return subject, ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(body), Size: int64(len(body)),
		ArtifactType: at, Annotations: m.Annotations}, true
}

// loadedReferrers returns the repository's entry, locked and loaded
// (scanning storage the first time). The caller unlocks rr.mu.
func (d *dataPlane) loadedReferrers(ctx context.Context, reg *dataRegistry, account, region, name string) (*repoReferrers, error) {
	rr := d.refs.entry(referrerKey(account, region, name))
	rr.mu.Lock()
	if rr.loaded {
		return rr, nil
	}
	rr.reset()
	if err := d.scanReferrers(ctx, reg, name, rr); err != nil {
		rr.reset()
		rr.mu.Unlock()
		return nil, err
	}
	rr.loaded = true
	return rr, nil
}

// scanReferrers records every stored manifest of repository name that has a
// subject; the caller holds rr.mu.
func (d *dataPlane) scanReferrers(ctx context.Context, reg *dataRegistry, name string, rr *repoReferrers) error {
	repo, err := d.repo(ctx, reg, name)
	if err != nil {
		return err
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("manifests of %s: %w", name, err)
	}
	en, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return fmt.Errorf("manifests of %s cannot be enumerated", name)
	}
	var dgs []digest.Digest
	err = en.Enumerate(ctx, func(dg digest.Digest) error {
		dgs = append(dgs, dg)
		return nil
	})
	var notFound storagedriver.PathNotFoundError
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &notFound) || errors.As(err, &unknown) {
		return nil // no manifests yet
	}
	if err != nil {
		return fmt.Errorf("list manifests of %s: %w", name, err)
	}
	for _, dg := range dgs {
		m, err := ms.Get(ctx, dg)
		var gone distribution.ErrManifestUnknownRevision
		if errors.As(err, &gone) {
			continue // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("read manifest %s@%s: %w", name, dg, err)
		}
		mt, body, err := m.Payload()
		if err != nil {
			return fmt.Errorf("read manifest %s@%s: %w", name, dg, err)
		}
		if subject, desc, ok := parseReferrer(mt, body); ok {
			rr.add(subject, desc)
		}
	}
	return nil
}

// serveReferrers answers GET /v2/<name>/referrers/<digest> with an image
// index of the subject's referrers (empty when there are none), filtered by
// the artifactType query parameter if given.
func (d *dataPlane) serveReferrers(w http.ResponseWriter, r *http.Request, reg *dataRegistry, account, region string, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		serveRegistryError(w, errcode.ErrorCodeUnsupported.WithMessage("The operation is unsupported."))
		return
	}
	subject, err := digest.Parse(rt.ref)
	if err != nil || subject.Algorithm() != digest.SHA256 {
		// ECR computes and accepts sha256 digests only.
		serveRegistryError(w, errcode.ErrorCodeDigestInvalid.WithMessage(fmt.Sprintf("Invalid digest '%s'", rt.ref)))
		return
	}
	artifactType := r.URL.Query().Get("artifactType")
	rr, err := d.loadedReferrers(r.Context(), reg, account, region, rt.name)
	if err != nil {
		serveRegistryError(w, errcode.ErrorCodeUnknown.WithMessage(err.Error()))
		return
	}
	list := make([]ocispec.Descriptor, 0, len(rr.bySubject[subject]))
	for _, desc := range rr.bySubject[subject] {
		if artifactType == "" || desc.ArtifactType == artifactType {
			list = append(list, desc)
		}
	}
	rr.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Digest < list[j].Digest })
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: list}
	idx.SchemaVersion = 2
	body, err := json.Marshal(idx)
	if err != nil {
		serveRegistryError(w, errcode.ErrorCodeUnknown.WithMessage(err.Error()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", ocispec.MediaTypeImageIndex)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	if artifactType != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// statusHook calls hook once, with the status, just before the response
// header is written: time to add headers and to act on the outcome.
type statusHook struct {
	http.ResponseWriter
	hook  func(code int)
	fired bool
}

func (w *statusHook) fire(code int) {
	if !w.fired {
		w.fired = true
		w.hook(code)
	}
}

func (w *statusHook) WriteHeader(code int) {
	w.fire(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusHook) Write(b []byte) (int, error) {
	w.fire(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

func (w *statusHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusHook) Flush() {
	w.fire(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// referrerPutHook wraps w for a manifest PUT of body: when the manifest has
// a subject and distribution stored it (201), the response carries
// OCI-Subject and the index records the referrer.
func (d *dataPlane) referrerPutHook(w http.ResponseWriter, account, region, name, contentType string, body []byte) http.ResponseWriter {
	subject, desc, ok := parseReferrer(contentType, body)
	if !ok {
		return w
	}
	key := referrerKey(account, region, name)
	return &statusHook{ResponseWriter: w, hook: func(code int) {
		if code != http.StatusCreated {
			return
		}
		w.Header().Set("OCI-Subject", subject.String())
		d.refs.recorded(key, func(rr *repoReferrers) { rr.add(subject, desc) })
	}}
}

// referrerDeleteHook wraps w for a manifest DELETE: a manifest deleted by
// digest (202) leaves the index.
func (d *dataPlane) referrerDeleteHook(w http.ResponseWriter, account, region string, rt route) http.ResponseWriter {
	dg, err := digest.Parse(rt.ref)
	if err != nil {
		return w // a tag: untagging keeps the manifest
	}
	key := referrerKey(account, region, rt.name)
	return &statusHook{ResponseWriter: w, hook: func(code int) {
		if code == http.StatusAccepted {
			d.refs.recorded(key, func(rr *repoReferrers) { rr.remove(dg) })
		}
	}}
}

// --- ListImageReferrers -------------------------------------------------------

// imageReferrer is one entry of ListImageReferrers.
type imageReferrer struct {
	Digest         string            `json:"digest"`
	MediaType      string            `json:"mediaType"`
	ArtifactType   string            `json:"artifactType,omitempty"`
	Size           int64             `json:"size"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	ArtifactStatus string            `json:"artifactStatus"`
}

// opListImageReferrers answers from the same index as the registry's
// referrers API. The emulator archives nothing, so every referrer is ACTIVE.
func opListImageReferrers(c *call) (any, error) {
	var in struct {
		repoRef
		SubjectID *struct {
			ImageDigest string `json:"imageDigest"`
		} `json:"subjectId"`
		Filter *struct {
			ArtifactStatus string   `json:"artifactStatus"`
			ArtifactTypes  []string `json:"artifactTypes"`
		} `json:"filter"`
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.SubjectID == nil {
		return nil, errInvalidParam("Invalid parameter at 'subjectId' failed to satisfy constraint: 'Member must not be null'")
	}
	subject, err := digest.Parse(in.SubjectID.ImageDigest)
	if err != nil || subject.Algorithm() != digest.SHA256 {
		return nil, errInvalidParam("Invalid parameter at 'imageDigest': '%s' is not a valid sha256 digest", in.SubjectID.ImageDigest)
	}
	if err := checkMaxResults(in.MaxResults, 50); err != nil {
		return nil, err
	}
	if in.MaxResults == 0 {
		in.MaxResults = 20
	}
	status, types := "ACTIVE", map[string]bool{}
	if in.Filter != nil {
		switch in.Filter.ArtifactStatus {
		case "":
		case "ACTIVE", "ARCHIVED", "ACTIVATING", "ANY":
			status = in.Filter.ArtifactStatus
		default:
			return nil, errInvalidParam("Invalid parameter at 'filter.artifactStatus': '%s' is not one of ACTIVE, ARCHIVED, ACTIVATING, ANY", in.Filter.ArtifactStatus)
		}
		for _, t := range in.Filter.ArtifactTypes {
			types[t] = true
		}
	}
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(in.repoRef)
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	dreg, err := c.e.data.registry(reg.Account, reg.Region)
	if err != nil {
		return nil, err
	}
	rr, err := c.e.data.loadedReferrers(c.ctx, dreg, reg.Account, reg.Region, r.Name)
	if err != nil {
		return nil, err
	}
	byDigest := map[string]imageReferrer{}
	var keys []string
	if status == "ACTIVE" || status == "ANY" {
		for dg, desc := range rr.bySubject[subject] {
			if len(types) > 0 && !types[desc.ArtifactType] {
				continue
			}
			keys = append(keys, dg.String())
			byDigest[dg.String()] = imageReferrer{Digest: dg.String(), MediaType: desc.MediaType, ArtifactType: desc.ArtifactType,
				Size: desc.Size, Annotations: desc.Annotations, ArtifactStatus: "ACTIVE"}
		}
	}
	rr.mu.Unlock()
	sort.Strings(keys)
	page, next, err := paginate(keys, in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	out := []imageReferrer{}
	for _, k := range page {
		out = append(out, byDigest[k])
	}
	resp := map[string]any{"referrers": out}
	if next != "" {
		resp["nextToken"] = next
	}
	return resp, nil
}
