package ecrfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/ecrgate/ecrgate/pkg/ecrname"
)

// The API push path (BatchCheckLayerAvailability, InitiateLayerUpload,
// UploadLayerPart, CompleteLayerUpload, GetDownloadUrlForLayer, PutImage).
// Layers and manifests go to the same distribution storage the registry
// serves, so what is pushed through the API is pullable through /v2/ and
// the other way round.

const (
	// maxLayerPart is the largest part UploadLayerPart accepts.
	maxLayerPart = 20971520
	// maxLayerPartBody bounds an UploadLayerPart request: the part in
	// base64 plus the rest of the JSON.
	maxLayerPartBody = maxLayerPart/3*4 + 8 + 64<<10
	// maxPutImageBody bounds a PutImage request: a manifest up to
	// MaxManifestSize, escaped in JSON, plus the rest. A larger manifest
	// is refused with InvalidParameterException by the registry's limit.
	maxPutImageBody = 2*MaxManifestSize + 64<<10
)

// layerUpload is one InitiateLayerUpload session.
type layerUpload struct {
	mu      sync.Mutex
	account string
	region  string
	repo    string
	buf     bytes.Buffer
}

func errLayersNotFound(msg string) *awsError {
	return &awsError{http.StatusBadRequest, "LayersNotFoundException", msg}
}

// repoBlobs looks up the repository of a request and its blob store.
func (c *call) repoBlobs(ref repoRef) (*registryState, *repository, distribution.BlobStore, error) {
	c.e.st.mu.Lock()
	reg, r, err := c.lookupRepo(ref)
	c.e.st.mu.Unlock()
	if err != nil {
		return nil, nil, nil, err
	}
	dreg, err := c.e.data.registry(reg.Account, reg.Region)
	if err != nil {
		return nil, nil, nil, err
	}
	rp, err := c.e.data.repo(c.ctx, dreg, r.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, r, rp.Blobs(c.ctx), nil
}

// --- BatchCheckLayerAvailability ---------------------------------------------

type layerOut struct {
	LayerDigest       string `json:"layerDigest"`
	LayerAvailability string `json:"layerAvailability"`
	LayerSize         int64  `json:"layerSize"`
	MediaType         string `json:"mediaType,omitempty"`
}

type layerFailure struct {
	LayerDigest   string `json:"layerDigest"`
	FailureCode   string `json:"failureCode"`
	FailureReason string `json:"failureReason"`
}

func opBatchCheckLayerAvailability(c *call) (any, error) {
	var in struct {
		repoRef
		LayerDigests []string `json:"layerDigests"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.LayerDigests) == 0 || len(in.LayerDigests) > 100 {
		return nil, errInvalidParam("Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length less than or equal to 100 and greater than or equal to 1'")
	}
	_, _, blobs, err := c.repoBlobs(in.repoRef)
	if err != nil {
		return nil, err
	}
	out := struct {
		Layers   []layerOut     `json:"layers"`
		Failures []layerFailure `json:"failures"`
	}{Layers: []layerOut{}, Failures: []layerFailure{}}
	for _, s := range in.LayerDigests {
		dg, err := digest.Parse(s)
		if err != nil {
			out.Failures = append(out.Failures, layerFailure{s, "InvalidLayerDigest", "Invalid layer digest"})
			continue
		}
		desc, err := blobs.Stat(c.ctx, dg)
		if errors.Is(err, distribution.ErrBlobUnknown) {
			out.Failures = append(out.Failures, layerFailure{s, "MissingLayerDigest", "Could not find layer " + s})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat blob %s: %w", dg, err)
		}
		out.Layers = append(out.Layers, layerOut{LayerDigest: s, LayerAvailability: "AVAILABLE", LayerSize: desc.Size, MediaType: desc.MediaType})
	}
	return out, nil
}

// --- InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload ---------------

func opInitiateLayerUpload(c *call) (any, error) {
	var in repoRef
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	reg, r, _, err := c.repoBlobs(in)
	if err != nil {
		return nil, err
	}
	id := randomHex(16)
	c.e.uploads.Store(id, &layerUpload{account: reg.Account, region: reg.Region, repo: r.Name})
	return map[string]any{"uploadId": id, "partSize": maxLayerPart}, nil
}

// dropUploads ends the layer upload sessions of a deleted repository.
func (e *Emulator) dropUploads(account, region, name string) {
	e.uploads.Range(func(id, v any) bool {
		if u := v.(*layerUpload); u.account == account && u.region == region && u.repo == name {
			e.uploads.Delete(id)
		}
		return true
	})
}

func errUploadNotFound(id string) *awsError {
	return &awsError{http.StatusBadRequest, "UploadNotFoundException", fmt.Sprintf("Upload with id '%s' is not found", id)}
}

// upload finds the session id of repository ref.
func (c *call) upload(ref repoRef, id string) (*layerUpload, error) {
	reg, r, _, err := c.repoBlobs(ref)
	if err != nil {
		return nil, err
	}
	v, ok := c.e.uploads.Load(id)
	if !ok {
		return nil, errUploadNotFound(id)
	}
	u := v.(*layerUpload)
	if u.account != reg.Account || u.region != reg.Region || u.repo != r.Name {
		return nil, errUploadNotFound(id)
	}
	return u, nil
}

func opUploadLayerPart(c *call) (any, error) {
	var in struct {
		repoRef
		UploadID      string `json:"uploadId"`
		PartFirstByte *int64 `json:"partFirstByte"`
		PartLastByte  *int64 `json:"partLastByte"`
		LayerPartBlob []byte `json:"layerPartBlob"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.PartFirstByte == nil || in.PartLastByte == nil {
		return nil, errInvalidParam("partFirstByte and partLastByte are required")
	}
	if len(in.LayerPartBlob) == 0 || len(in.LayerPartBlob) > maxLayerPart {
		return nil, errInvalidParam("Invalid parameter at 'layerPartBlob' failed to satisfy constraint: 'Member must have length less than or equal to %d and greater than or equal to 1'", maxLayerPart)
	}
	u, err := c.upload(in.repoRef, in.UploadID)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	first, last := *in.PartFirstByte, *in.PartLastByte
	if first != int64(u.buf.Len()) || last-first+1 != int64(len(in.LayerPartBlob)) {
		return nil, &awsError{http.StatusBadRequest, "InvalidLayerPartException", fmt.Sprintf(
			"The layer part with range %d-%d is not valid: the upload has %d bytes and the part %d", first, last, u.buf.Len(), len(in.LayerPartBlob))}
	}
	u.buf.Write(in.LayerPartBlob)
	return map[string]any{
		"registryId": u.account, "repositoryName": u.repo, "uploadId": in.UploadID, "lastByteReceived": last,
	}, nil
}

func opCompleteLayerUpload(c *call) (any, error) {
	var in struct {
		repoRef
		UploadID     string   `json:"uploadId"`
		LayerDigests []string `json:"layerDigests"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.LayerDigests) != 1 {
		return nil, errInvalidParam("Invalid parameter at 'layerDigests': exactly one layer digest is supported")
	}
	_, _, blobs, err := c.repoBlobs(in.repoRef)
	if err != nil {
		return nil, err
	}
	u, err := c.upload(in.repoRef, in.UploadID)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := c.e.uploads.Load(in.UploadID); !ok {
		return nil, errUploadNotFound(in.UploadID)
	}
	if u.buf.Len() == 0 {
		return nil, &awsError{http.StatusBadRequest, "EmptyUploadException", fmt.Sprintf("The upload with id '%s' is empty", in.UploadID)}
	}
	want, err := digest.Parse(in.LayerDigests[0])
	if err != nil || want.Algorithm() != digest.SHA256 {
		return nil, &awsError{http.StatusBadRequest, "InvalidLayerException", "Invalid layer digest " + in.LayerDigests[0]}
	}
	got := digest.FromBytes(u.buf.Bytes())
	if got != want {
		return nil, &awsError{http.StatusBadRequest, "InvalidLayerException", fmt.Sprintf(
			"The layer digest '%s' does not match the uploaded content's digest '%s'", want, got)}
	}
	if _, err := blobs.Stat(c.ctx, want); err == nil {
		c.e.uploads.Delete(in.UploadID)
		return nil, &awsError{http.StatusBadRequest, "LayerAlreadyExistsException", fmt.Sprintf(
			"The layer with digest '%s' already exists in the repository with name '%s'", want, u.repo)}
	}
	if _, err := blobs.Put(c.ctx, "application/octet-stream", u.buf.Bytes()); err != nil {
		return nil, fmt.Errorf("store layer %s: %w", want, err)
	}
	c.e.uploads.Delete(in.UploadID)
	return map[string]any{
		"registryId": u.account, "repositoryName": u.repo, "uploadId": in.UploadID, "layerDigest": want.String(),
	}, nil
}

// --- GetDownloadUrlForLayer --------------------------------------------------

func opGetDownloadURLForLayer(c *call) (any, error) {
	var in struct {
		repoRef
		LayerDigest string `json:"layerDigest"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	dg, err := digest.Parse(in.LayerDigest)
	if err != nil {
		return nil, errInvalidParam("Invalid parameter at 'layerDigest' failed to satisfy constraint: 'Member must satisfy regular expression pattern: [a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'")
	}
	reg, r, blobs, err := c.repoBlobs(in.repoRef)
	if err != nil {
		return nil, err
	}
	if _, err := blobs.Stat(c.ctx, dg); err != nil {
		if errors.Is(err, distribution.ErrBlobUnknown) {
			return nil, errLayersNotFound(fmt.Sprintf("The image layer with digest '%s' could not be found in the repository with name '%s'", dg, r.Name))
		}
		return nil, &awsError{http.StatusBadRequest, "LayerInaccessibleException", err.Error()}
	}
	if c.e.s3 == nil {
		return nil, &awsError{http.StatusBadRequest, "LayerInaccessibleException",
			"The emulator serves presigned layer URLs only with Options.BlobRedirect"}
	}
	return map[string]any{"downloadUrl": c.e.s3.presign(reg.Account, reg.Region, r.Name, dg), "layerDigest": dg.String()}, nil
}

// --- PutImage ------------------------------------------------------------------

func opPutImage(c *call) (any, error) {
	var in struct {
		repoRef
		ImageManifest          string `json:"imageManifest"`
		ImageManifestMediaType string `json:"imageManifestMediaType"`
		ImageTag               string `json:"imageTag"`
		ImageDigest            string `json:"imageDigest"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ImageManifest == "" {
		return nil, errInvalidParam("Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Member must have length greater than or equal to 1'")
	}
	body := []byte(in.ImageManifest)
	type desc struct {
		Digest string `json:"digest"`
	}
	var f struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        *desc  `json:"config"`
		Layers        []desc `json:"layers"`
		Manifests     []desc `json:"manifests"`
		Subject       *desc  `json:"subject"`
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, errInvalidParam("Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'")
	}
	refs := append(append([]desc{}, f.Layers...), f.Manifests...)
	if f.Config != nil {
		refs = append(refs, *f.Config)
	}
	if f.Subject != nil {
		refs = append(refs, *f.Subject)
	}
	for _, d := range refs {
		if _, err := digest.Parse(d.Digest); err != nil {
			return nil, errInvalidParam("Invalid parameter at 'ImageManifest': invalid digest '%s'", d.Digest)
		}
	}
	mt := in.ImageManifestMediaType
	if mt == "" {
		mt = f.MediaType
	}
	if mt == "" {
		return nil, errInvalidParam("Invalid parameter at 'imageManifestMediaType': the manifest has no mediaType and none was given")
	}
	if in.ImageTag != "" {
		if err := ecrname.ValidateTag(in.ImageTag); err != nil {
			return nil, errInvalidParam("Invalid parameter at 'imageTag': %v", err)
		}
	}
	dg := digest.FromBytes(body)
	if in.ImageDigest != "" && in.ImageDigest != dg.String() {
		return nil, &awsError{http.StatusBadRequest, "ImageDigestDoesNotMatchException", fmt.Sprintf(
			"Provided image digest '%s' does not match the calculated image digest '%s'", in.ImageDigest, dg)}
	}
	reg, r, imgs, err := c.repoImages(in.repoRef)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if img.Digest != dg {
			continue
		}
		if in.ImageTag == "" || slices.Contains(img.Tags, in.ImageTag) {
			return nil, &awsError{http.StatusBadRequest, "ImageAlreadyExistsException", fmt.Sprintf(
				"Image with digest '%s' and tag '%s' already exists in the repository with name '%s' in registry with id '%s'",
				dg, in.ImageTag, r.Name, reg.Account)}
		}
	}
	dreg, err := c.e.data.registry(reg.Account, reg.Region)
	if err != nil {
		return nil, err
	}
	ref := dg.String()
	if in.ImageTag != "" {
		ref = in.ImageTag
	}
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPut, "/v2/"+r.Name+"/manifests/"+url.PathEscape(ref), bytes.NewReader(body))
	if err != nil {
		return nil, errInvalidParam("%v", err)
	}
	req.Header.Set("Content-Type", mt)
	rec := newAnswer()
	c.e.data.putManifest(rec, req, dreg, reg.Account, reg.Region, r, parseRoute(req))
	if rec.Code/100 != 2 {
		return nil, putImageError(rec, r.Name, f.Manifests != nil)
	}
	return map[string]any{"image": map[string]any{
		"registryId": reg.Account, "repositoryName": r.Name,
		"imageId":                imageID{ImageDigest: dg.String(), ImageTag: in.ImageTag},
		"imageManifest":          in.ImageManifest,
		"imageManifestMediaType": mt,
	}}, nil
}

// putImageError turns the registry's answer to a manifest PUT into ECR's
// exception.
func putImageError(rec *answer, repo string, index bool) error {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	code, msg := "", strings.TrimSpace(rec.Body.String())
	if len(body.Errors) > 0 {
		code, msg = body.Errors[0].Code, body.Errors[0].Message
	}
	switch code {
	case errcode.ErrorCodeTagInvalid.String():
		if strings.Contains(msg, "immutable") {
			return &awsError{http.StatusBadRequest, "ImageTagAlreadyExistsException", msg}
		}
		return errInvalidParam("%s", msg)
	case errcode.ErrorCodeManifestBlobUnknown.String():
		if index {
			return &awsError{http.StatusBadRequest, "ReferencedImagesNotFoundException", fmt.Sprintf(
				"The manifest list is referencing images that do not exist in the repository with name '%s': %s", repo, msg)}
		}
		return errLayersNotFound(fmt.Sprintf("Layers with digests referenced by the manifest could not be found in the repository with name '%s': %s", repo, msg))
	case errcode.ErrorCodeManifestInvalid.String(), errcode.ErrorCodeManifestUnverified.String(), errcode.ErrorCodeDigestInvalid.String(),
		"MANIFEST_UNKNOWN", "UNSUPPORTED":
		return errInvalidParam("Invalid parameter at 'ImageManifest': %s", msg)
	}
	if rec.Code/100 == 4 {
		return errInvalidParam("Invalid parameter at 'ImageManifest': %s %s", code, msg)
	}
	return fmt.Errorf("store manifest (%d): %s", rec.Code, msg)
}

// answer records what the registry's handler answered to a request the
// control plane makes on a caller's behalf (PutImage stores its manifest
// through the registry's own PUT). net/http/httptest would do, but the
// emulator's binary must not link test packages (test/deps).
type answer struct {
	header http.Header
	Code   int
	Body   bytes.Buffer
	wrote  bool
}

func newAnswer() *answer { return &answer{header: http.Header{}, Code: http.StatusOK} }

func (a *answer) Header() http.Header { return a.header }

func (a *answer) Write(b []byte) (int, error) {
	a.wrote = true
	return a.Body.Write(b)
}

// WriteHeader keeps the first status, as a real connection does.
func (a *answer) WriteHeader(code int) {
	if !a.wrote {
		a.Code, a.wrote = code, true
	}
}
