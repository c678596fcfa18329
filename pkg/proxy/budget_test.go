package proxy_test

// A total cap on buffered manifests (issue #11, G3): manifests held at
// once never pass the budget; past it a PUT gets 429 TOOMANYREQUESTS with
// Retry-After, and what was held is given back when the requests end.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/proxy"
)

func TestManifestBudget(t *testing.T) {
	f := badStart(t)
	const size, held = 60 << 10, 3
	budget := proxy.NewManifestBudget(held * size)
	o := f.base
	o.AnswerPing, o.ManifestBudget = true, budget
	p, err := proxy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// The upstream holds every manifest PUT of budget/held until released,
	// so the proxy holds their buffers at once.
	arrived := make(chan string, 16)
	release := make(chan struct{})
	f.front.setAnswer(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/v2/budget/") {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasPrefix(r.URL.Path, "/v2/budget/held/") {
			arrived <- r.URL.Path
			<-release
		}
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
		w.WriteHeader(http.StatusCreated)
		return true
	})
	manifest := func(n int) string {
		head := fmt.Sprintf(`{"schemaVersion":2,"annotations":{"n":"%d","pad":"`, n)
		return head + strings.Repeat("x", n-len(head)-3) + `"}}`
	}
	put := func(repo, tag string, chunked bool, n int) (*http.Response, []byte) {
		body := manifest(n)
		if chunked {
			return badRaw(t, addr, fmt.Sprintf("PUT /v2/%s/manifests/%s HTTP/1.1\r\nHost: localhost:5000\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
				repo, tag, len(body), body), nil)
		}
		return badRaw(t, addr, fmt.Sprintf("PUT /v2/%s/manifests/%s HTTP/1.1\r\nHost: localhost:5000\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			repo, tag, len(body), body), nil)
	}

	// Within the budget: three manifests held at once.
	var wg sync.WaitGroup
	codes := make([]int, held)
	for i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := put("budget/held", fmt.Sprint(i), false, size)
			codes[i] = resp.StatusCode
		}()
	}
	for range held {
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			t.Fatal("the held manifests never reached the upstream")
		}
	}
	if got := budget.InUse(); got != held*size {
		t.Errorf("budget in use with %d manifests held: %d, want %d", held, got, held*size)
	}

	// Past it: refused before anything is read into memory or sent on,
	// with a Content-Length or without one.
	before := len(f.front.registry())
	for _, chunked := range []bool{false, true} {
		what := fmt.Sprintf("a manifest past the budget (chunked %v)", chunked)
		resp, b := put("budget/more", "1", chunked, 1024)
		code, msg := regCode(t, what, resp, b)
		if resp.StatusCode != http.StatusTooManyRequests || code != "TOOMANYREQUESTS" || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(msg, "too many manifests") || !strings.Contains(msg, "retry") {
			t.Errorf("%s: %d %s %q Retry-After %q; want 429 TOOMANYREQUESTS saying so, with Retry-After", what, resp.StatusCode, code, msg, resp.Header.Get("Retry-After"))
		}
	}
	for _, s := range f.front.registry()[before:] {
		if s.method == http.MethodPut {
			t.Errorf("a refused manifest reached the upstream: %s %s", s.method, s.path)
		}
	}
	if got := budget.InUse(); got != held*size {
		t.Errorf("refusals changed the budget in use: %d, want %d", got, held*size)
	}

	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusCreated {
			t.Errorf("held manifest %d: %d, want 201", i, c)
		}
	}
	// Given back once the requests are done (the handler returns just
	// after the client has its answer).
	deadline := time.Now().Add(10 * time.Second)
	for budget.InUse() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := budget.InUse(); got != 0 {
		t.Fatalf("budget in use after every request ended: %d", got)
	}
	for _, chunked := range []bool{false, true} {
		if resp, b := put("budget/later", fmt.Sprint(chunked), chunked, size); resp.StatusCode != http.StatusCreated {
			t.Errorf("a manifest after the budget was given back (chunked %v): %d %s", chunked, resp.StatusCode, b)
		}
	}
}
