package distpath

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		method, path string
		want         Route
	}{
		{"GET", "/v2/", Route{Op: Base}},
		{"GET", "/v2", Route{Op: Base}},
		{"GET", "/v2/_catalog", Route{Op: Catalog}},
		{"POST", "/v2/team/app/blobs/uploads/", Route{Op: UploadStart, Name: "team/app", Write: true}},
		{"POST", "/v2/app/blobs/uploads", Route{Op: UploadStart, Name: "app", Write: true}},
		{"PATCH", "/v2/team/app/blobs/uploads/abc-123", Route{Op: UploadChunk, Name: "team/app", Ref: "abc-123", Write: true}},
		{"PUT", "/v2/team/app/blobs/uploads/abc", Route{Op: UploadComplete, Name: "team/app", Ref: "abc", Write: true}},
		{"GET", "/v2/team/app/blobs/uploads/abc", Route{Op: UploadStatus, Name: "team/app", Ref: "abc"}},
		{"DELETE", "/v2/team/app/blobs/uploads/abc", Route{Op: UploadCancel, Name: "team/app", Ref: "abc", Write: true}},
		{"HEAD", "/v2/team/app/blobs/sha256:aa", Route{Op: BlobHead, Name: "team/app", Ref: "sha256:aa"}},
		{"GET", "/v2/team/app/blobs/sha256:aa", Route{Op: BlobGet, Name: "team/app", Ref: "sha256:aa"}},
		{"PUT", "/v2/a/b/c/manifests/1.0", Route{Op: ManifestPut, Name: "a/b/c", Ref: "1.0", Write: true}},
		{"HEAD", "/v2/a/manifests/latest", Route{Op: ManifestHead, Name: "a", Ref: "latest"}},
		{"DELETE", "/v2/a/manifests/sha256:bb", Route{Op: ManifestDelete, Name: "a", Ref: "sha256:bb", Write: true}},
		{"GET", "/v2/team/app/tags/list", Route{Op: TagsList, Name: "team/app"}},
		{"GET", "/v2/team/app/referrers/sha256:cc", Route{Op: Referrers, Name: "team/app", Ref: "sha256:cc"}},
		// A repository whose path contains the API's own words.
		{"GET", "/v2/blobs/manifests/manifests/x", Route{Op: ManifestGet, Name: "blobs/manifests", Ref: "x"}},
		{"POST", "/v2/team/blobs/uploads/", Route{Op: UploadStart, Name: "team", Write: true}},
		{"GET", "/elsewhere", Route{Op: Unknown}},
		{"PATCH", "/v2/a/blobs/uploads/x/y", Route{Op: Unknown}},
		{"GET", "/v2//manifests/x", Route{Op: Unknown}},
		{"GET", "/v2/a/manifests/", Route{Op: Unknown}},
		{"GET", "/v2/manifests/x", Route{Op: Unknown}},
		{"GET", "/v2/a/tags/list/extra", Route{Op: Unknown}},
		{"GET", "/v2/a/b/referrers/sha256:cc", Route{Op: Referrers, Name: "a/b", Ref: "sha256:cc"}},
	}
	for _, tt := range tests {
		if got := Parse(tt.method, tt.path); got != tt.want {
			t.Errorf("Parse(%s %s) = %+v, want %+v", tt.method, tt.path, got, tt.want)
		}
	}
	if !Parse("POST", "/v2/a/blobs/uploads/").Creates() || !Parse("PUT", "/v2/a/manifests/1").Creates() || Parse("PATCH", "/v2/a/blobs/uploads/x").Creates() {
		t.Error("Creates() wrong")
	}
}
