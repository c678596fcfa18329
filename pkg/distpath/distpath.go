// Package distpath classifies OCI distribution API requests: which
// operation a method and /v2/ path are, on which repository, and whether
// the request writes (a push). The emulator and the proxy share it.
package distpath

import (
	"net/http"
	"strings"
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

// cut returns the repository name and the rest when path is
// /v2/<name><sep><rest>, taking the last sep (names may contain the API's
// own words), with rest holding no '/' and being no dot segment.
func cut(path, sep string) (name, rest string, ok bool) {
	i := strings.LastIndex(path, sep)
	if i <= len("/v2") || !strings.HasPrefix(path, "/v2/") {
		return "", "", false
	}
	name, rest = path[len("/v2/"):i], path[i+len(sep):]
	// A dot segment is no reference: upstream it would change the path.
	if name == "" || strings.Contains(rest, "/") || rest == "." || rest == ".." {
		return "", "", false
	}
	return name, rest, true
}

// Parse classifies a request by method and (unescaped) path.
func Parse(method, path string) Route {
	switch path {
	case "/v2", "/v2/":
		return Route{Op: Base}
	case "/v2/_catalog":
		return Route{Op: Catalog}
	}
	if strings.HasSuffix(path, "/blobs/uploads") {
		path += "/"
	}
	if name, ref, ok := cut(path, "/blobs/uploads/"); ok {
		if ref == "" {
			if method != http.MethodPost {
				// Only a POST starts an upload; a GET or HEAD here must
				// never count as a write that creates a repository.
				return Route{Op: Unknown}
			}
			return Route{Op: UploadStart, Name: name, Write: true}
		}
		op := pick(method, map[string]Op{http.MethodPatch: UploadChunk, http.MethodPut: UploadComplete, http.MethodDelete: UploadCancel}, UploadStatus)
		return Route{Op: op, Name: name, Ref: ref, Write: op != UploadStatus}
	}
	if name, ref, ok := cut(path, "/blobs/"); ok && ref != "" {
		op := pick(method, map[string]Op{http.MethodHead: BlobHead, http.MethodDelete: BlobDelete}, BlobGet)
		return Route{Op: op, Name: name, Ref: ref, Write: op == BlobDelete}
	}
	if name, ref, ok := cut(path, "/manifests/"); ok && ref != "" {
		op := pick(method, map[string]Op{http.MethodHead: ManifestHead, http.MethodPut: ManifestPut, http.MethodDelete: ManifestDelete}, ManifestGet)
		return Route{Op: op, Name: name, Ref: ref, Write: op == ManifestPut || op == ManifestDelete}
	}
	if name, rest, ok := cut(path, "/tags/list"); ok && rest == "" {
		return Route{Op: TagsList, Name: name}
	}
	if name, ref, ok := cut(path, "/referrers/"); ok && ref != "" {
		return Route{Op: Referrers, Name: name, Ref: ref}
	}
	return Route{Op: Unknown}
}

func pick(method string, byMethod map[string]Op, otherwise Op) Op {
	if op, ok := byMethod[method]; ok {
		return op
	}
	return otherwise
}
