// Package distpath classifies OCI distribution API requests: which
// operation a method and /v2/ path are, on which repository, and whether
// the request writes (a push). The emulator and the proxy share it.
package distpath

import (
	"net/http"
	"regexp"
)

// Op is a distribution API operation.
type Op string

// The operations, named like the emulator counts them.
const (
	Base           Op = "Registry.Base"
	Catalog        Op = "Registry.Catalog"
	BlobHead       Op = "Registry.BlobHead"
	BlobGet        Op = "Registry.BlobGet"
	BlobDelete     Op = "Registry.BlobDelete"
	UploadStart    Op = "Registry.UploadStart" // POST …/blobs/uploads/, including ?mount=
	UploadChunk    Op = "Registry.UploadChunk"
	UploadComplete Op = "Registry.UploadComplete"
	UploadStatus   Op = "Registry.UploadStatus"
	UploadCancel   Op = "Registry.UploadCancel"
	ManifestGet    Op = "Registry.ManifestGet"
	ManifestHead   Op = "Registry.ManifestHead"
	ManifestPut    Op = "Registry.ManifestPut"
	ManifestDelete Op = "Registry.ManifestDelete"
	TagsList       Op = "Registry.TagsList"
	Referrers      Op = "Registry.Referrers"
	Unknown        Op = "Registry.Unknown"
)

// Route is one classified request.
type Route struct {
	Op   Op
	Name string // repository name; "" for Base, Catalog and Unknown
	Ref  string // tag or digest (manifests, blobs, referrers) or upload id
	// Write is true for requests that push: they may create a repository.
	Write bool
}

// Creates reports whether the request is the first write of a push to a
// repository: an upload start (plain or mount) or a manifest PUT. The
// proxy ensures the repository exists before forwarding these.
func (r Route) Creates() bool { return r.Op == UploadStart || r.Op == ManifestPut }

var (
	reUploadStart = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/?$`)
	reUpload      = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([^/]+)$`)
	reBlob        = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	reManifest    = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reTags        = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	reReferrers   = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

func pick(method string, byMethod map[string]Op, otherwise Op) Op {
	if op, ok := byMethod[method]; ok {
		return op
	}
	return otherwise
}

// Parse classifies a request by method and (unescaped) path.
func Parse(method, path string) Route {
	switch path {
	case "/v2", "/v2/":
		return Route{Op: Base}
	case "/v2/_catalog":
		return Route{Op: Catalog}
	}
	if s := reUploadStart.FindStringSubmatch(path); s != nil {
		return Route{Op: UploadStart, Name: s[1], Write: true}
	}
	if s := reUpload.FindStringSubmatch(path); s != nil {
		op := pick(method, map[string]Op{http.MethodPatch: UploadChunk, http.MethodPut: UploadComplete, http.MethodDelete: UploadCancel}, UploadStatus)
		return Route{Op: op, Name: s[1], Ref: s[2], Write: op != UploadStatus}
	}
	if s := reBlob.FindStringSubmatch(path); s != nil {
		op := pick(method, map[string]Op{http.MethodHead: BlobHead, http.MethodDelete: BlobDelete}, BlobGet)
		return Route{Op: op, Name: s[1], Ref: s[2], Write: op == BlobDelete}
	}
	if s := reManifest.FindStringSubmatch(path); s != nil {
		op := pick(method, map[string]Op{http.MethodHead: ManifestHead, http.MethodPut: ManifestPut, http.MethodDelete: ManifestDelete}, ManifestGet)
		return Route{Op: op, Name: s[1], Ref: s[2], Write: op == ManifestPut || op == ManifestDelete}
	}
	if s := reTags.FindStringSubmatch(path); s != nil {
		return Route{Op: TagsList, Name: s[1]}
	}
	if s := reReferrers.FindStringSubmatch(path); s != nil {
		return Route{Op: Referrers, Name: s[1], Ref: s[2]}
	}
	return Route{Op: Unknown}
}
