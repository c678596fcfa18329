package proxy_test

// Intercept mode creates a repository only for a client whose own
// credentials the registry accepts for that repository (issue #11, B2;
// issue #15), checked with a HEAD of a blob in the repository and trusted
// for VerifyTTL by a fingerprint.

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/proxy"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestInterceptVerifiesClientBeforeCreating(t *testing.T) {
	f := badStart(t)
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	const ttl = 5 * time.Minute
	o := f.base
	o.Mode, o.VerifyTTL, o.Now = proxy.InterceptMode, ttl, clock.Now
	p, err := proxy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	tok, err := ecrauth.New(ecrauth.Options{Env: os.Environ(), NoCache: true}).Token(context.Background(), badRegistry)
	if err != nil {
		t.Fatal(err)
	}
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tok.Username+":"+tok.Password))
	// checks counts the probes the proxy sent with auth (for repo, or
	// for any repository when repo is "").
	checks := func(auth string, repo ...string) int {
		n := 0
		for _, s := range f.front.registry() {
			if s.method == http.MethodHead && strings.HasSuffix(s.path, "/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") && s.auth == auth &&
				(len(repo) == 0 || s.path == "/v2/"+repo[0]+"/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") {
				n++
			}
		}
		return n
	}
	post := func(repo, auth string) *http.Response {
		t.Helper()
		h := ""
		if auth != "" {
			h = "Authorization: " + auth + "\r\n"
		}
		resp, _ := badRaw(t, addr, "POST /v2/"+repo+"/blobs/uploads/ HTTP/1.1\r\nHost: "+badRegistry+"\r\n"+h+"Content-Length: 0\r\nConnection: close\r\n\r\n", nil)
		return resp
	}
	created := func(repo string) bool {
		_, ok := f.e.Repository("", repo)
		return ok
	}
	refused := func(what string, resp *http.Response, repo string) {
		t.Helper()
		want := `Basic realm="https://` + badRegistry + `/",service="ecr.amazonaws.com"`
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
			t.Errorf("%s: %d WWW-Authenticate %q; want 401 with ECR's challenge", what, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if created(repo) {
			t.Errorf("%s: %s was created", what, repo)
		}
	}

	// Good credentials: checked once per repository, then trusted for the TTL.
	if resp := post("verify/a", good); resp.StatusCode != http.StatusAccepted || !created("verify/a") {
		t.Fatalf("first push with good credentials: %d, created %v", resp.StatusCode, created("verify/a"))
	}
	if n := checks(good, "verify/a"); n != 1 {
		t.Errorf("%d checks of the client's credentials, want 1", n)
	}
	clock.add(ttl - time.Second)
	if resp := post("verify/a", good); resp.StatusCode != http.StatusAccepted {
		t.Errorf("second push within the TTL: %d", resp.StatusCode)
	}
	if n := checks(good, "verify/a"); n != 1 {
		t.Errorf("%d checks within the TTL, want 1", n)
	}
	if resp := post("verify/b", good); resp.StatusCode != http.StatusAccepted || !created("verify/b") {
		t.Errorf("push to another repository: %d", resp.StatusCode)
	}
	if n := checks(good, "verify/b"); n != 1 {
		t.Errorf("%d checks for another repository, want 1 of its own", n)
	}
	clock.add(2 * time.Second)
	if resp := post("verify/a", good); resp.StatusCode != http.StatusAccepted {
		t.Errorf("push after the TTL: %d", resp.StatusCode)
	}
	if n := checks(good, "verify/a"); n != 2 {
		t.Errorf("%d checks after the TTL ran out, want 2", n)
	}

	// One client's parallel uploads to a new repository share one probe.
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = post("verify/parallel", good).StatusCode
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusAccepted {
			t.Errorf("parallel upload %d: %d", i, code)
		}
	}
	if n := checks(good, "verify/parallel"); n != 1 {
		t.Errorf("8 parallel uploads sent %d probes of the same credentials, want 1", n)
	}

	// No credentials: refused without asking anyone.
	before := len(f.front.registry())
	refused("no credentials", post("verify/none", ""), "verify/none")
	if n := len(f.front.registry()) - before; n != 0 {
		t.Errorf("a request without credentials sent %d requests upstream", n)
	}
	// Made-up and refused credentials: checked, refused, nothing created.
	for _, bad := range []struct{ what, auth string }{
		{"Basic garbage", "Basic garbage"},
		{"a made-up Basic token", "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:made-up"))},
		{"the token as Bearer", "Bearer " + tok.Password},
	} {
		refused(bad.what, post("verify/bad", bad.auth), "verify/bad")
		if n := checks(bad.auth); n != 1 {
			t.Errorf("%s: %d checks, want 1", bad.what, n)
		}
	}
	// Two Authorization headers: refused.
	resp, _ := badRaw(t, addr, "POST /v2/verify/two/blobs/uploads/ HTTP/1.1\r\nHost: "+badRegistry+"\r\nAuthorization: "+good+"\r\nAuthorization: Basic garbage\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
	refused("two Authorization headers", resp, "verify/two")

	// A token ECR revoked is refused once the trust in it has run out.
	f.e.ExpireTokens()
	clock.add(ttl + time.Second)
	resp = post("verify/revoked", good)
	if resp.StatusCode < 400 || created("verify/revoked") {
		t.Errorf("revoked token after the TTL: %d, created %v", resp.StatusCode, created("verify/revoked"))
	}
	// The client's credentials go upstream untouched, never the proxy's token.
	for _, s := range f.front.registry() {
		if strings.HasPrefix(s.path, "/v2/verify/") && !strings.HasPrefix(s.path, "/v2/verify/bad/") && s.auth != good {
			t.Errorf("%s %s reached the upstream with credentials other than the client's", s.method, s.path)
		}
	}
	if n := f.e.Calls("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times; only the test's own call was expected", n)
	}
}
