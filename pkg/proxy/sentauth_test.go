package proxy

import (
	"encoding/base64"
	"net/http"
	"slices"
	"testing"
)

// TestSentAuth: every Authorization value that goes through, and each form
// an upstream could echo of it, is recorded in the request's call, once;
// longest first, so a longer form is cut out before a shorter one inside it.
func TestSentAuth(t *testing.T) {
	_, upstream := startRecorder(t, okAnswer)
	rt := newSentAuth(http.DefaultTransport)
	first := "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:first-password"))
	second := "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:second-password"))

	req, c := upstreamRequest(t, upstream, RegistryMode, false, http.MethodGet, "/v2/team/app/manifests/1", "")
	for _, auth := range []string{first, first, second, ""} {
		r := req.Clone(req.Context())
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := rt.RoundTrip(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, want := range []string{first, "first-password", "AWS:first-password", second, "second-password", base64.StdEncoding.EncodeToString([]byte("AWS:second-password"))} {
		if !slices.Contains(c.sent, want) {
			t.Errorf("%q is not recorded", want)
		}
	}
	for i, f := range c.sent {
		if slices.Contains(c.sent[i+1:], f) {
			t.Errorf("%q recorded twice", f)
		}
		if i > 0 && len(f) > len(c.sent[i-1]) {
			t.Errorf("%q comes after the shorter %q", f, c.sent[i-1])
		}
	}
	if got := redact("upstream said: "+second+" / second-password", c.sent); got != "upstream said: "+redacted+" / "+redacted {
		t.Errorf("redacted with the record: %q", got)
	}

	// A request without a call (not the handler's) goes through as it is.
	bare, err := http.NewRequest(http.MethodGet, upstream.String()+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	bare.Header.Set("Authorization", first)
	resp, err := rt.RoundTrip(bare)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
