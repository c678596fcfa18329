package distpath

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/ecrname"
)

// hostilePaths are request paths a client may send on purpose: traversal,
// escapes the server has already decoded, empty segments, control bytes,
// unicode, very long names, and the API's own words in odd places.
var hostilePaths = []string{
	"/v2/../manifests/x",
	"/v2/a/../b/manifests/x",
	"/v2/a/../../v2/b/blobs/uploads/",
	"/v2/%2e%2e/manifests/x", // as sent; the server decodes it to ".."
	"/v2/a%2Fb/manifests/x",
	"/v2/a//b/manifests/x",
	"/v2//a/blobs/uploads/",
	"/v2/a/b//tags/list",
	"/v2/a/b/manifests//",
	"/v2/Team/App/manifests/1.0",
	"/v2/" + strings.Repeat("a", 257) + "/manifests/x",
	"/v2/" + strings.Repeat("a/", 4096) + "manifests/x",
	"/v2/app\x00/manifests/x",
	"/v2/a\r\nX-Injected: 1/manifests/x",
	"/v2/ünïcödé/manifests/x",
	"/v2/a/manifests/x\r\nX-Injected: 1",
	"/v2/a/manifests/..",
	"/v2/a/blobs/uploads/.",
	"/v2/a/referrers/..",
	"/v2/blobs/uploads/blobs/uploads/",
	"/v2/a/blobs/uploads",
	"/v2/a/blobs/uploads//",
	"/v2/a/tags/list/",
	"/v2/a/referrers/",
	"/v2/_catalog/x",
	"/v2/",
	"/v2",
	"",
	"/",
	"v2/a/manifests/x",
}

// canonical is the path a route stands for.
func canonical(r Route) string {
	base := "/v2/" + r.Name
	switch r.Op {
	case Base:
		return "/v2/"
	case Catalog:
		return "/v2/_catalog"
	case UploadStart:
		return base + "/blobs/uploads/"
	case UploadChunk, UploadComplete, UploadStatus, UploadCancel:
		return base + "/blobs/uploads/" + r.Ref
	case BlobHead, BlobGet, BlobDelete:
		return base + "/blobs/" + r.Ref
	case ManifestGet, ManifestHead, ManifestPut, ManifestDelete:
		return base + "/manifests/" + r.Ref
	case TagsList:
		return base + "/tags/list"
	case Referrers:
		return base + "/referrers/" + r.Ref
	}
	return ""
}

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "BREW"}

// checkRoute asserts what holds for every classified request, whatever the
// path: no panic, the same answer twice, the route stands for the path it
// came from, and a read never counts as a write.
func checkRoute(t *testing.T, method, path string) Route {
	t.Helper()
	r := Parse(method, path)
	if again := Parse(method, path); again != r {
		t.Fatalf("Parse(%q, %q) not deterministic: %+v then %+v", method, path, r, again)
	}
	switch r.Op {
	case Unknown:
		if r != (Route{Op: Unknown}) {
			t.Fatalf("Parse(%q, %q) = %+v: Unknown carries nothing", method, path, r)
		}
		return r
	case Base, Catalog:
		if r.Name != "" || r.Ref != "" || r.Write || (r.Op == Base) != (path == "/v2" || path == "/v2/") || (r.Op == Catalog) != (path == "/v2/_catalog") {
			t.Fatalf("Parse(%q, %q) = %+v", method, path, r)
		}
		return r
	}
	if r.Name == "" || strings.Contains(r.Ref, "/") || r.Ref == "." || r.Ref == ".." {
		t.Fatalf("Parse(%q, %q) = %+v: empty name or a '/' in the reference", method, path, r)
	}
	if c := canonical(r); c != path && !(r.Op == UploadStart && c == path+"/") {
		t.Fatalf("Parse(%q, %q) = %+v, which stands for %q", method, path, r, c)
	}
	if again := Parse(method, canonical(r)); again != r {
		t.Fatalf("Parse(%q, %q) = %+v but its canonical path %q gives %+v", method, path, r, canonical(r), again)
	}
	if r.Write && (method == http.MethodGet || method == http.MethodHead) {
		t.Fatalf("Parse(%q, %q) = %+v: a %s counted as a write", method, path, r, method)
	}
	if r.Creates() && !(r.Op == UploadStart && method == http.MethodPost || r.Op == ManifestPut && method == http.MethodPut) {
		t.Fatalf("Parse(%q, %q) = %+v: Creates() for a request that starts no push", method, path, r)
	}
	if r.Creates() && !r.Write {
		t.Fatalf("Parse(%q, %q) = %+v: creates but is no write", method, path, r)
	}
	return r
}

func TestParseHostile(t *testing.T) {
	for _, path := range hostilePaths {
		for _, m := range methods {
			checkRoute(t, m, path)
		}
	}
	// Parse does not judge names: the proxy and the emulator validate them
	// with ecrname. It must hand them over unchanged, never cleaned.
	for path, name := range map[string]string{
		"/v2/../manifests/x":       "..",
		"/v2/a/../b/manifests/x":   "a/../b",
		"/v2/a//b/manifests/x":     "a//b",
		"/v2/app\x00/manifests/x":  "app\x00",
		"/v2/ünïcödé/manifests/x":  "ünïcödé",
		"/v2/Team/App/manifests/1": "Team/App",
	} {
		if r := Parse(http.MethodGet, path); r.Name != name || ecrname.ValidateRepository(r.Name) == nil {
			t.Errorf("Parse(GET %q).Name = %q, want %q (which ecrname refuses)", path, r.Name, name)
		}
	}
	// Only a POST starts an upload (and may create a repository).
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if r := Parse(m, "/v2/a/b/blobs/uploads/"); r != (Route{Op: Unknown}) {
			t.Errorf("Parse(%s …/blobs/uploads/) = %+v, want Unknown", m, r)
		}
	}
}

// FuzzParse feeds arbitrary methods and paths to Parse and checks the
// invariants of checkRoute.
func FuzzParse(f *testing.F) {
	for _, p := range hostilePaths {
		for _, m := range methods {
			f.Add(m, p)
		}
	}
	for _, p := range []string{"/v2/team/app/blobs/uploads/", "/v2/team/app/blobs/uploads/abc", "/v2/a/blobs/sha256:aa",
		"/v2/a/b/c/manifests/1.0", "/v2/blobs/manifests/manifests/x", "/v2/a/tags/list", "/v2/a/referrers/sha256:cc", "/v2/_catalog"} {
		f.Add(http.MethodPut, p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		checkRoute(t, method, path)
	})
}

// FuzzParseValidName builds the path of each operation for a name ECR
// accepts and checks that Parse gives back exactly that name, reference and
// operation, however the name is made (names may contain "blobs",
// "uploads", "manifests", "tags" and "list" as components).
func FuzzParseValidName(f *testing.F) {
	for _, s := range []string{"team/app", "blobs/uploads", "a/blobs/uploads", "x/manifests", "a/tags/list", "v2/referrers", "blobs", "a/blobs", "team/app/blobs/uploads/b"} {
		for k := range 11 {
			f.Add(s, "sha256:"+strings.Repeat("ab", 32), uint8(k))
			f.Add(s, "1.0", uint8(k))
		}
	}
	f.Fuzz(func(t *testing.T, name, ref string, kind uint8) {
		if ecrname.ValidateRepository(name) != nil || ref == "" || ref == "." || ref == ".." || strings.Contains(ref, "/") {
			return
		}
		digest := strings.Contains(ref, ":")
		tag := ecrname.ValidateTag(ref) == nil
		base := "/v2/" + name
		var (
			method, path string
			want         Route
		)
		switch kind % 11 {
		case 0:
			method, path, want = http.MethodPost, base+"/blobs/uploads/", Route{Op: UploadStart, Name: name, Write: true}
		case 1:
			method, path, want = http.MethodPatch, base+"/blobs/uploads/"+ref, Route{Op: UploadChunk, Name: name, Ref: ref, Write: true}
		case 2:
			method, path, want = http.MethodPut, base+"/blobs/uploads/"+ref, Route{Op: UploadComplete, Name: name, Ref: ref, Write: true}
		case 3:
			method, path, want = http.MethodGet, base+"/blobs/uploads/"+ref, Route{Op: UploadStatus, Name: name, Ref: ref}
		case 4:
			if !digest {
				return
			}
			method, path, want = http.MethodHead, base+"/blobs/"+ref, Route{Op: BlobHead, Name: name, Ref: ref}
		case 5:
			if !digest {
				return
			}
			method, path, want = http.MethodGet, base+"/blobs/"+ref, Route{Op: BlobGet, Name: name, Ref: ref}
		case 6:
			if !digest && !tag {
				return
			}
			method, path, want = http.MethodPut, base+"/manifests/"+ref, Route{Op: ManifestPut, Name: name, Ref: ref, Write: true}
		case 7:
			if !digest && !tag {
				return
			}
			method, path, want = http.MethodGet, base+"/manifests/"+ref, Route{Op: ManifestGet, Name: name, Ref: ref}
		case 8:
			if !digest && !tag {
				return
			}
			method, path, want = http.MethodDelete, base+"/manifests/"+ref, Route{Op: ManifestDelete, Name: name, Ref: ref, Write: true}
		case 9:
			method, path, want = http.MethodGet, base+"/tags/list", Route{Op: TagsList, Name: name}
		case 10:
			if !digest {
				return
			}
			method, path, want = http.MethodGet, base+"/referrers/"+ref, Route{Op: Referrers, Name: name, Ref: ref}
		}
		if got := checkRoute(t, method, path); got != want {
			t.Fatalf("Parse(%s %q) = %+v, want %+v", method, path, got, want)
		}
	})
}
