package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/blobindex"
	"github.com/ecrgate/ecrgate/pkg/distpath"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

// Shared layers mounted instead of uploaded (#16).
//
// ECR mounts a blob from another repository of the same registry
// (BLOB_MOUNTING enabled, identical encryption) only when the client names
// the source, which a fresh runner, BuildKit or crane never knows. ecrgate
// can: it remembers where it saw blobs (blobindex), and a template's
// mount_from names where base layers live. When a pusher's
// HEAD /v2/<repo>/blobs/<digest> finds nothing, the blobs link asks those
// repositories (a HEAD in the source, with the same credentials as the
// pusher's request) and, when one holds the blob:
//
//   - the target repository exists: it mounts the blob there (POST
//     ?mount=&from=) and answers the HEAD 200 as ECR then would;
//   - it does not exist yet (a read never creates one): it answers 200 and
//     keeps a promise, which the push's first write fulfils right after the
//     repository is created (Proxy.ServeHTTP): a mount, or, where ECR
//     refuses it (202), a copy of the blob from the source. A source blob
//     deleted in between fails that write with an error that says so.

// MountFacts answer what the proxy asks before mounting: pkg/repocreate's
// Ensurer.
type MountFacts interface {
	// MountFrom says whether mount_shared_layers is on and what the
	// repository's template names in mount_from.
	MountFrom(repository string) (enabled bool, from []string)
	// BlobMounting reports whether the registry mounts at all.
	BlobMounting(ctx context.Context, registry string) (bool, error)
	// Encryption tells a repository's encryption (or, for a missing one,
	// what it would be created with).
	Encryption(ctx context.Context, registry, repository string) (repocreate.RepoEncryption, error)
	// AuditMount records a mount in the audit log.
	AuditMount(ctx context.Context, r repocreate.MountRecord)
}

const (
	// promiseTTL bounds how long a layer promised to a push that has not
	// written yet is kept.
	promiseTTL = 30 * time.Minute
	// maxPromises bounds the promises kept; past it a pusher uploads.
	maxPromises = 10_000
	// maxMountCandidates bounds the source repositories asked per layer.
	maxMountCandidates = 6
	// deletedTTL is how long a blob a client deleted from a repository is
	// not mounted back into it; maxDeleted bounds how many are kept.
	deletedTTL = 30 * time.Minute
	maxDeleted = 4096
)

var sha256Digest = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// mounter does the mounting for one Proxy. The requests it sends go
// through rt, the chain below the blobs link, each with a call of its own.
type mounter struct {
	facts   MountFacts
	index   *blobindex.Index
	rt      http.RoundTripper // the upstream chain below the blobs link
	direct  http.RoundTripper // Options.Transport: for redirects off the registry (S3), without credentials
	metrics *Metrics
	o       Options

	mu       sync.Mutex
	promises map[string]map[string]promise // registry/repository -> digest -> promise
	count    int
	deleted  map[string]time.Time // registry/repository@digest a client deleted -> until when it stays so
	flights  singleflight.Group
}

type promise struct {
	from    string
	size    int64
	expires time.Time
}

// blobs is the link of the upstream chain that learns where blobs are
// (successful HEADs, GETs, upload completions and mounts) and answers a
// HEAD that finds nothing with a mount when it can.
type blobs struct {
	inner http.RoundTripper
	m     *mounter
}

var _ http.RoundTripper = (*blobs)(nil)

func (b *blobs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.inner.RoundTrip(req)
	c := callFrom(req.Context())
	if err != nil || c == nil {
		return resp, err
	}
	b.m.learn(c, req, resp)
	if c.route.Op == distpath.BlobHead && resp.StatusCode == http.StatusNotFound {
		if ok := b.m.onMiss(req, c); ok != nil {
			drain(resp)
			return ok, nil
		}
	}
	return resp, nil
}

// learn records in the index a blob the upstream just showed to be in the
// request's repository, and forgets one it showed to be gone.
func (m *mounter) learn(c *call, req *http.Request, resp *http.Response) {
	reg, repo := c.target.Registry, c.target.Repository
	switch {
	case (c.route.Op == distpath.BlobHead || c.route.Op == distpath.BlobGet) && resp.StatusCode == http.StatusOK:
		m.index.Add(reg, repo, c.route.Ref, resp.ContentLength)
	case c.route.Op == distpath.BlobGet && resp.StatusCode == http.StatusTemporaryRedirect:
		m.index.Add(reg, repo, c.route.Ref, -1)
	case c.route.Op == distpath.UploadComplete && resp.StatusCode == http.StatusCreated:
		if dg := req.URL.Query().Get("digest"); sha256Digest.MatchString(dg) {
			m.index.Add(reg, repo, dg, -1)
		}
	case c.route.Op == distpath.UploadStart && resp.StatusCode == http.StatusCreated:
		if dg := req.URL.Query().Get("mount"); sha256Digest.MatchString(dg) {
			m.index.Add(reg, repo, dg, -1)
		}
	case c.route.Op == distpath.BlobDelete && resp.StatusCode == http.StatusAccepted:
		// A blob the client deleted stays deleted for it: a HEAD right
		// after must find nothing, not a mount from elsewhere.
		m.index.Forget(reg, repo, c.route.Ref)
		m.markDeleted(reg, repo, c.route.Ref)
	case (c.route.Op == distpath.BlobHead || c.route.Op == distpath.BlobGet) && resp.StatusCode == http.StatusNotFound:
		m.index.Forget(reg, repo, c.route.Ref)
	}
}

// onMiss answers a blob HEAD the upstream answered 404 with a 200 when the
// blob is mounted, or promised, from another repository; nil otherwise.
func (m *mounter) onMiss(req *http.Request, c *call) *http.Response {
	reg, repo, dg := c.target.Registry, c.target.Repository, c.route.Ref
	if !sha256Digest.MatchString(dg) {
		return nil
	}
	enabled, from := m.facts.MountFrom(repo)
	if !enabled || m.wasDeleted(reg, repo, dg) {
		return nil
	}
	if size, ok := m.promised(reg, repo, dg); ok {
		return headOK(req, dg, size)
	}
	known, _, _ := m.index.Lookup(reg, dg)
	var candidates []string
	for _, r := range slices.Concat(known, from) {
		if r != repo && !slices.Contains(candidates, r) && len(candidates) < maxMountCandidates {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	ctx := req.Context()
	log := m.o.Logger.With("registry", reg, "repository", repo, "digest", dg)
	if on, _ := m.facts.BlobMounting(ctx, reg); !on {
		log.Debug("layer not mounted: the registry's BLOB_MOUNTING setting is not ENABLED")
		return nil
	}
	tenc, err := m.facts.Encryption(ctx, reg, repo)
	if err != nil {
		log.Debug("layer not mounted: cannot tell the repository's encryption", "err", err)
		return nil
	}
	auth := req.Header.Get("Authorization")
	for _, src := range candidates {
		senc, err := m.facts.Encryption(ctx, reg, src)
		if err != nil || !senc.Exists || senc.Type != tenc.Type || senc.KMSKey != tenc.KMSKey {
			if err == nil && !senc.Exists && slices.Contains(known, src) {
				m.index.Forget(reg, src, dg)
			}
			log.Debug("layer not mounted from this repository", "from", src, "exists", senc.Exists, "encryption", senc.String(), "target_encryption", tenc.String(), "err", err)
			continue
		}
		size, ok := m.head(ctx, c, src, dg, auth)
		if !ok {
			m.index.Forget(reg, src, dg)
			continue
		}
		if tenc.Exists {
			if m.mount(ctx, c, repo, src, dg, auth, size) {
				return headOK(req, dg, size)
			}
			return nil // refused: the pusher uploads
		}
		if !m.promise(reg, repo, dg, src, size) {
			return nil
		}
		log.Debug("layer promised: mounted at the push's first write", "from", src, "size", size)
		return headOK(req, dg, size)
	}
	return nil
}

func (m *mounter) markDeleted(reg, repo, dg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if len(m.deleted) >= maxDeleted {
		for k, until := range m.deleted {
			if !now.Before(until) {
				delete(m.deleted, k)
			}
		}
		for k := range m.deleted { // still full: any one goes
			if len(m.deleted) < maxDeleted {
				break
			}
			delete(m.deleted, k)
		}
	}
	m.deleted[reg+"/"+repo+"@"+dg] = now.Add(deletedTTL)
}

func (m *mounter) wasDeleted(reg, repo, dg string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.deleted[reg+"/"+repo+"@"+dg]
	return ok && time.Now().Before(until)
}

// headOK is ECR's answer to a HEAD of a blob it has.
func headOK(req *http.Request, dg string, size int64) *http.Response {
	h := http.Header{}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", dg)
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, ContentLength: size, Request: req}
}

func (m *mounter) promised(reg, repo, dg string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.promises[reg+"/"+repo][dg]
	if !ok || !time.Now().Before(p.expires) {
		return 0, false
	}
	return p.size, true
}

func (m *mounter) promise(reg, repo, dg, from string, size int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.count >= maxPromises {
		for k, ps := range m.promises {
			for d, p := range ps {
				if !now.Before(p.expires) {
					delete(ps, d)
					m.count--
				}
			}
			if len(ps) == 0 {
				delete(m.promises, k)
			}
		}
		if m.count >= maxPromises {
			return false
		}
	}
	key := reg + "/" + repo
	if m.promises[key] == nil {
		m.promises[key] = map[string]promise{}
	}
	if _, ok := m.promises[key][dg]; !ok {
		m.count++
	}
	m.promises[key][dg] = promise{from: from, size: size, expires: now.Add(promiseTTL)}
	return true
}

// take removes and returns the live promises made for repository reg/repo.
func (m *mounter) take(key string) map[string]promise {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.promises[key]
	delete(m.promises, key)
	m.count -= len(ps)
	now := time.Now()
	for d, p := range ps {
		if !now.Before(p.expires) {
			delete(ps, d)
		}
	}
	return ps
}

func (m *mounter) pending(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.promises[key]) > 0
}

// fulfil keeps, at a push's first write (its repository now exists), the
// promises made to its HEADs: a mount each, or a copy where ECR refuses
// the mount. Concurrent writes of the push wait for the same work.
func (m *mounter) fulfil(ctx context.Context, c *call, auth string) error {
	key := c.target.Registry + "/" + c.target.Repository
	if !m.pending(key) {
		return nil
	}
	_, err, _ := m.flights.Do(key, func() (any, error) {
		ps := m.take(key)
		var errs []error
		for _, dg := range slices.Sorted(func(yield func(string) bool) {
			for d := range ps {
				if !yield(d) {
					return
				}
			}
		}) {
			p := ps[dg]
			if m.mount(ctx, c, c.target.Repository, p.from, dg, auth, p.size) {
				continue
			}
			if err := m.copy(ctx, c, p.from, dg, auth, p.size); err != nil {
				var ec errcode.Error
				if !errors.As(err, &ec) {
					// Not the source gone: kept for the client's retry
					// of this write, which tries again.
					m.promise(c.target.Registry, c.target.Repository, dg, p.from, p.size)
				}
				errs = append(errs, err)
			}
		}
		return nil, errors.Join(errs...)
	})
	if err == nil {
		return nil
	}
	var ec errcode.Error
	if errors.As(err, &ec) {
		return ec
	}
	return errcode.ErrorCodeUnavailable.WithMessage(err.Error() + "; retry the push")
}

// sub is a call for a request the mounter sends about repo of c's
// registry, with c's mode and credentials.
func (c *call) sub(op distpath.Op, repo string) *call {
	s := &call{route: distpath.Route{Op: op, Name: repo}, target: c.target, mode: c.mode, clientName: repo,
		clientHost: c.clientHost, scheme: c.scheme, start: time.Now(), verified: c.verified}
	s.target.Repository = repo
	return s
}

// send sends a request about repo through the chain below the blobs link.
// u is absolute (a Location) or a path on the upstream.
func (m *mounter) send(ctx context.Context, c *call, op distpath.Op, repo, method, u string, body io.Reader, size int64, auth string) (*http.Response, error) {
	base := &url.URL{Scheme: c.target.Upstream.Scheme, Host: c.target.Upstream.Host}
	ref, err := base.Parse(u)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(ref.Host, c.target.Registry) {
		ref.Scheme, ref.Host = base.Scheme, base.Host
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, ctxKey{}, c.sub(op, repo)), method, ref.String(), body)
	if err != nil {
		return nil, err
	}
	req.Host = c.target.Registry
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if auth != "" && !c.mode.ownToken() {
		req.Header.Set("Authorization", auth)
	}
	return m.rt.RoundTrip(req)
}

// head confirms that repo holds dg and returns its size.
func (m *mounter) head(ctx context.Context, c *call, repo, dg, auth string) (int64, bool) {
	resp, err := m.send(ctx, c, distpath.BlobHead, repo, http.MethodHead, "/v2/"+repo+"/blobs/"+dg, nil, 0, auth)
	if err != nil {
		return 0, false
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK || resp.ContentLength < 0 {
		return 0, false
	}
	return resp.ContentLength, true
}

// mount asks the upstream to mount dg from src into repo; a 202 (ECR
// opened an upload session instead) is cancelled.
func (m *mounter) mount(ctx context.Context, c *call, repo, src, dg, auth string, size int64) bool {
	q := url.Values{"mount": {dg}, "from": {src}}
	resp, err := m.send(ctx, c, distpath.UploadStart, repo, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?"+q.Encode(), nil, 0, auth)
	if err != nil {
		return false
	}
	drain(resp)
	log := m.o.Logger.With("registry", c.target.Registry, "repository", repo, "digest", dg, "from", src)
	switch resp.StatusCode {
	case http.StatusCreated:
		m.mounted(ctx, c, repo, src, dg, size, "mount")
		return true
	case http.StatusAccepted:
		log.Info("the registry refused to mount the layer (202); cancelling that upload session")
		if loc := resp.Header.Get("Location"); loc != "" {
			if r, err := m.send(ctx, c, distpath.UploadCancel, repo, http.MethodDelete, loc, nil, 0, auth); err == nil {
				drain(r)
			}
		}
	default:
		log.Info("the registry did not mount the layer", "status", resp.StatusCode)
	}
	return false
}

func (m *mounter) mounted(ctx context.Context, c *call, repo, src, dg string, size int64, how string) {
	reg := c.target.Registry
	m.index.Add(reg, repo, dg, size)
	m.metrics.Mounts.WithLabelValues(how).Inc()
	if size > 0 {
		m.metrics.MountedBytes.WithLabelValues(how).Add(float64(size))
	}
	m.o.Logger.Info("layer mounted instead of uploaded", "registry", reg, "repository", repo, "digest", dg, "from", src, "size", size, "how", how)
	m.facts.AuditMount(ctx, repocreate.MountRecord{Registry: reg, Repository: repo, Digest: dg, From: src, Size: size, How: how})
}

// errSourceGone fails the write that was to keep a promise whose source
// blob is gone.
func errSourceGone(reg, src, dg string) error {
	return errcode.ErrorCodeBlobUnknown.WithMessage(fmt.Sprintf(
		"layer %s, which ecrgate told the pusher it would mount from repository %q of %s, is gone from there (deleted after the push checked for it); push again and the layer is uploaded",
		dg, src, reg))
}

// copy copies dg from src into c's repository through ecrgate: a GET from
// the source (following a redirect to S3 without credentials), streamed
// into a new upload session.
func (m *mounter) copy(ctx context.Context, c *call, src, dg, auth string, size int64) error {
	reg, repo := c.target.Registry, c.target.Repository
	get, err := m.send(ctx, c, distpath.BlobGet, src, http.MethodGet, "/v2/"+src+"/blobs/"+dg, nil, 0, auth)
	if err != nil {
		return fmt.Errorf("copy layer %s from %q: %w", dg, src, err)
	}
	if loc := get.Header.Get("Location"); get.StatusCode >= 300 && get.StatusCode < 400 && loc != "" {
		drain(get)
		u, err := url.Parse(loc)
		if err != nil {
			return fmt.Errorf("copy layer %s from %q: redirect: %w", dg, src, err)
		}
		if strings.EqualFold(u.Host, reg) || strings.EqualFold(u.Host, c.target.Upstream.Host) || u.Host == "" {
			get, err = m.send(ctx, c, distpath.BlobGet, src, http.MethodGet, loc, nil, 0, auth)
		} else {
			var req *http.Request
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc, nil); err == nil {
				get, err = m.direct.RoundTrip(req) // S3: never the registry's credentials
			}
		}
		if err != nil {
			return fmt.Errorf("copy layer %s from %q: %w", dg, src, err)
		}
	}
	defer get.Body.Close()
	switch {
	case get.StatusCode == http.StatusNotFound:
		m.index.Forget(reg, src, dg)
		m.o.Logger.Warn("promised layer is gone from its source repository", "registry", reg, "repository", repo, "digest", dg, "from", src)
		return errSourceGone(reg, src, dg)
	case get.StatusCode != http.StatusOK:
		return fmt.Errorf("copy layer %s from %q: GET answered %d", dg, src, get.StatusCode)
	}
	if size < 0 {
		size = get.ContentLength
	}
	start, err := m.send(ctx, c, distpath.UploadStart, repo, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, 0, auth)
	if err != nil {
		return fmt.Errorf("copy layer %s to %q: %w", dg, repo, err)
	}
	drain(start)
	loc := start.Header.Get("Location")
	if start.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("copy layer %s to %q: upload start answered %d", dg, repo, start.StatusCode)
	}
	patch, err := m.send(ctx, c, distpath.UploadChunk, repo, http.MethodPatch, loc, get.Body, size, auth)
	if err != nil {
		return fmt.Errorf("copy layer %s to %q: %w", dg, repo, err)
	}
	drain(patch)
	if loc = patch.Header.Get("Location"); patch.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("copy layer %s to %q: upload answered %d", dg, repo, patch.StatusCode)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("copy layer %s to %q: %w", dg, repo, err)
	}
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	put, err := m.send(ctx, c, distpath.UploadComplete, repo, http.MethodPut, u.String(), nil, 0, auth)
	if err != nil {
		return fmt.Errorf("copy layer %s to %q: %w", dg, repo, err)
	}
	drain(put)
	if put.StatusCode != http.StatusCreated {
		return fmt.Errorf("copy layer %s to %q: upload completion answered %d", dg, repo, put.StatusCode)
	}
	m.mounted(ctx, c, repo, src, dg, size, "copy")
	return nil
}
