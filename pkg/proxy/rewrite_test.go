package proxy

import (
	"net/url"
	"testing"
)

func TestRewriteURL(t *testing.T) {
	p := &Proxy{}
	c := &call{target: Target{Registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Repository: "team/app",
		Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:4566"}},
		clientName: "prod/team/app", clientHost: "localhost:5000", scheme: "http"}
	c.route.Name = "prod/team/app"
	tests := []struct{ in, want string }{
		// ECR's own absolute upload URL comes back to the proxy, under the client's name.
		{"https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/team/app/blobs/uploads/u1?_state=x%2Fy",
			"http://localhost:5000/v2/prod/team/app/blobs/uploads/u1?_state=x%2Fy"},
		// The endpoint override's host (the emulator) too.
		{"http://127.0.0.1:4566/v2/team/app/blobs/uploads/u2", "http://localhost:5000/v2/prod/team/app/blobs/uploads/u2"},
		// Relative locations keep their form; only the name changes.
		{"/v2/team/app/blobs/sha256:aa", "/v2/prod/team/app/blobs/sha256:aa"},
		// S3 redirects are the client's business, untouched (and never carry our token).
		{"https://prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com/abc/sha256:aa?X-Amz-Signature=s",
			"https://prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com/abc/sha256:aa?X-Amz-Signature=s"},
		// Another repository on the same host is left alone.
		{"/v2/other/blobs/x", "/v2/other/blobs/x"},
	}
	for _, tt := range tests {
		if got := p.rewriteURL(tt.in, c); got != tt.want {
			t.Errorf("rewriteURL(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	link := `</v2/team/app/tags/list?last=b&n=2>; rel="next"`
	if got, want := p.rewriteLink(link, c), `</v2/prod/team/app/tags/list?last=b&n=2>; rel="next"`; got != want {
		t.Errorf("rewriteLink = %s, want %s", got, want)
	}
}
