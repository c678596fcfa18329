package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRecreate: a write the upstream (the emulator) answers NAME_UNKNOWN
// makes the ensurer (repocreate, creating in the emulator) forget the
// repository; a request that may create it (registry mode, or an
// intercept client the upstream accepted) and can be replayed has it
// created again and is sent once more, body and all. Anything else gets
// the upstream's answer as it came.
func TestRecreate(t *testing.T) {
	const (
		upload   = "/v2/team/app/blobs/uploads/"
		manifest = "/v2/team/app/manifests/1"
		digest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		// A manifest whose config blob is not there: the retry gets past
		// NAME_UNKNOWN to the emulator's check of the blobs.
		body = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest + `","size":2},"layers":[]}`
	)
	tests := []struct {
		name       string
		repo       string
		before     string // "vanished" (ensured, then deleted), "exists", or "" (never created)
		deny       string // a deny pattern of the configuration
		mode       Mode
		verified   bool
		method     string
		path, body string
		oneShot    bool
		mediaType  string // Content-Type of the body
		wantStatus int
		wantBody   string // part of the body the client gets
		wantSent   int    // requests that reached the upstream
		wantExists bool   // the repository exists afterwards
		wantCached bool   // the ensurer still (or again) knows it exists (not checked with deny)
	}{
		{name: "registry mode: created again and retried", before: "vanished", mode: RegistryMode, method: http.MethodPost, path: upload,
			wantStatus: 202, wantSent: 2, wantExists: true, wantCached: true},
		{name: "intercept, verified client: created again and retried", before: "vanished", mode: InterceptMode, verified: true, method: http.MethodPost, path: upload,
			wantStatus: 202, wantSent: 2, wantExists: true, wantCached: true},
		{name: "intercept, unverified client: forgotten, not created", before: "vanished", mode: InterceptMode, method: http.MethodPost, path: upload,
			wantStatus: 404, wantBody: "NAME_UNKNOWN", wantSent: 1},
		{name: "manifest PUT: retried with its whole body", before: "vanished", mode: RegistryMode, method: http.MethodPut, path: manifest, body: body, mediaType: "application/vnd.oci.image.manifest.v1+json",
			wantStatus: 400, wantBody: "MANIFEST_BLOB_UNKNOWN", wantSent: 2, wantExists: true, wantCached: true},
		{name: "a body read once: forgotten, relayed", before: "vanished", mode: RegistryMode, method: http.MethodPost, path: upload + "?digest=" + digest, body: "layer", oneShot: true,
			wantStatus: 404, wantBody: "does not exist in the registry", wantSent: 1},
		{name: "a write that creates nothing (PATCH): forgotten, relayed", before: "vanished", mode: RegistryMode, method: http.MethodPatch, path: upload + "some-uuid", body: "chunk",
			wantStatus: 404, wantBody: "NAME_UNKNOWN", wantSent: 1},
		{name: "a read: untouched", before: "vanished", mode: RegistryMode, method: http.MethodGet, path: manifest,
			wantStatus: 404, wantBody: "NAME_UNKNOWN", wantSent: 1, wantCached: true},
		{name: "a 404 other than NAME_UNKNOWN: untouched", before: "exists", mode: RegistryMode, method: http.MethodPut, path: upload + "no-such-upload?digest=" + digest,
			wantStatus: 404, wantBody: "BLOB_UPLOAD_INVALID", wantSent: 1, wantExists: true, wantCached: true},
		{name: "creation refused: the upstream's answer relayed", deny: "team/*", mode: RegistryMode, method: http.MethodPost, path: upload,
			wantStatus: 404, wantBody: "The repository with name 'team/app' does not exist", wantSent: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := ""
			if tt.deny != "" {
				yaml = "deny: [\"" + tt.deny + "\"]\n"
			}
			m := startEmulated(t, yaml)
			ctx := context.Background()
			switch tt.before {
			case "vanished", "exists":
				if err := m.ens.Ensure(ctx, chainRegistry, "team/app"); err != nil {
					t.Fatal(err)
				}
				if tt.before == "vanished" {
					m.deleteRepository(t, "team/app")
				}
			}
			rec, upstream := startRecorder(t, m.e.ServeHTTP)
			rt := newRecreate(http.DefaultTransport, m.ens, discard)
			req, _ := upstreamRequest(t, upstream, tt.mode, tt.verified, tt.method, tt.path, tt.body)
			if tt.oneShot {
				req = oneShot(req)
			}
			req.Header.Set("Authorization", m.auth(t))
			if tt.mediaType != "" {
				req.Header.Set("Content-Type", tt.mediaType)
			}

			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("got %d %s, want %d with %q", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			seen := rec.requests()
			if len(seen) != tt.wantSent {
				t.Errorf("%d requests reached the upstream, want %d: %v", len(seen), tt.wantSent, seen)
			}
			for _, s := range seen {
				if s.body != tt.body {
					t.Errorf("%s reached the upstream with body %q, want %q", s, s.body, tt.body)
				}
			}
			if m.exists("team/app") != tt.wantExists {
				t.Errorf("team/app exists: %v, want %v", m.exists("team/app"), tt.wantExists)
			}
			if tt.deny == "" {
				// A repository the ensurer knows needs no DescribeRepositories.
				before := m.e.Calls("DescribeRepositories")
				if err := m.ens.Ensure(ctx, chainRegistry, "team/app"); err != nil {
					t.Fatal(err)
				}
				if cached := m.e.Calls("DescribeRepositories") == before; cached != tt.wantCached {
					t.Errorf("the ensurer knows team/app: %v, want %v", cached, tt.wantCached)
				}
			}
		})
	}
}
