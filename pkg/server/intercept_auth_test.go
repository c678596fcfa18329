package server_test

// Intercept mode never lends ecrgate's own token (issue #11, B2): dockerd
// meets ECR's own Basic challenge and sends the token of its credential
// helper; a request without credentials, or with credentials the registry
// refuses, reads nothing and creates nothing.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/localca"
)

// ecrChallenge is ECR's answer to a request without valid credentials.
const ecrChallenge = `Basic realm="https://` + registry + `/",service="ecr.amazonaws.com"`

func TestInterceptModeNeedsClientCredentials(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, caDir: caDir, yaml: fmt.Sprintf(
		"default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, e.URL())})

	// A private image, pushed in registry mode.
	img := randomImage(t, 512, 1)
	own, _ := name.ParseReference(s.proxy+"/team/app:secret-tag", name.Insecure)
	if err := remote.Write(own, img); err != nil {
		t.Fatal(err)
	}
	creates := e.Calls("CreateRepository")
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: s.intercept}),
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, auth string, body []byte) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "https://"+registry+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if strings.Contains(path, "/manifests/") {
			req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s through the intercept listener: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	challenged := func(what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != ecrChallenge {
			t.Errorf("%s: %d WWW-Authenticate %q %.300s; want 401 with ECR's challenge %q", what, resp.StatusCode,
				resp.Header.Get("WWW-Authenticate"), body, ecrChallenge)
		}
		if strings.Contains(body, "secret-tag") {
			t.Errorf("%s: the answer shows the private tag: %s", what, body)
		}
	}

	// Without credentials: ECR's own challenge, so dockerd asks its
	// credential helper; nothing is read.
	resp, body := do(http.MethodGet, "/v2/", "", nil)
	challenged("GET /v2/ without credentials", resp, body)
	resp, body = do(http.MethodGet, "/v2/team/app/tags/list", "", nil)
	challenged("GET tags/list without credentials", resp, body)
	resp, body = do(http.MethodGet, "/v2/team/app/manifests/secret-tag", "", nil)
	challenged("GET a manifest without credentials", resp, body)

	// Without credentials, or with ones ECR refuses: nothing is created.
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` +
		strings.Repeat("0", 64) + `","size":2},"layers":[]}`)
	for i, auth := range []string{
		"",
		"Basic garbage",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:not-a-token")),
		"Bearer made-up",
	} {
		for _, req := range []struct {
			method, path string
			body         []byte
		}{
			{http.MethodPost, fmt.Sprintf("/v2/brand-new/upload%d/blobs/uploads/", i), nil},
			{http.MethodPost, fmt.Sprintf("/v2/brand-new/mount%d/blobs/uploads/?mount=%s&from=team/app", i, digestOf(t, img)), nil},
			{http.MethodPut, fmt.Sprintf("/v2/brand-new/manifest%d/manifests/1", i), manifest},
		} {
			what := fmt.Sprintf("%s %s with Authorization %q", req.method, req.path, auth)
			resp, body := do(req.method, req.path, auth, req.body)
			challenged(what, resp, body)
			if !strings.Contains(body, `"UNAUTHORIZED"`) {
				t.Errorf("%s: body %s is not an UNAUTHORIZED registry error", what, body)
			}
		}
	}
	if n := e.Calls("CreateRepository") - creates; n != 0 {
		t.Errorf("requests without valid credentials made %d CreateRepository calls", n)
	}
	if reps := e.Repositories(""); len(reps) != 1 || reps[0] != "team/app" {
		t.Errorf("repositories %q; want only team/app", reps)
	}

	// With the client's own token (what docker-credential-ecrgate hands
	// dockerd): a push to a new repository creates it, and the image reads back.
	tok, err := ecrauth.New(ecrauth.Options{Env: env, NoCache: true}).Token(context.Background(), registry)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: tok.Username, Password: tok.Password})}
	ref, _ := name.ParseReference(registry + "/brand-new/app:1")
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push with the client's own token through the intercept listener: %v\n%s", err, s.logs)
	}
	if _, ok := e.Repository("", "brand-new/app"); !ok {
		t.Fatal("brand-new/app was not created")
	}
	got, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Errorf("pulled %s, pushed %s", digestOf(t, got), digestOf(t, img))
	}
	if strings.Contains(s.logs.String(), tok.Password) || strings.Contains(s.logs.String(), "Basic ") {
		t.Error("a credential reached the log")
	}
}
