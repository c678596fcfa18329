package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

const faultRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

func TestMain(m *testing.M) {
	// No test may reach the instance-metadata address.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// proxyTo serves an intercept-mode Proxy whose every repository goes to
// upstream through tr. Requests in these tests carry the client's own
// Authorization and create nothing, so neither the token source nor the
// ensurer is asked.
func proxyTo(t *testing.T, upstream string, tr http.RoundTripper) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ens, err := repocreate.New(repocreate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{
		Resolve: func(_, name string) (proxy.Target, error) {
			return proxy.Target{Registry: faultRegistry, Repository: name, Upstream: u}, nil
		},
		Mode:      proxy.InterceptMode,
		Ensurer:   ens,
		Tokens:    ecrauth.New(ecrauth.Options{}),
		Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// hangingUpstream accepts connections, reads what comes, and never answers.
func hangingUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, c) // until the test closes it
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// deadAddress is a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// call sends method path through the proxy with the client's own
// credentials; the client gives up after 30s, which no answer here may need.
func call(t *testing.T, proxyURL, method, path string, body io.Reader) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, proxyURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("AWS", "client-token")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: no answer from the proxy after %v: %v", method, path, time.Since(start), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), time.Since(start)
}

const blobPath = "/v2/team/app/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestUpstreamDown: an upstream registry that is not there, or takes the
// connection and never answers, gets the client a registry error naming
// it (503 UNAVAILABLE) within the dial or header timeout, not a hang.
func TestUpstreamDown(t *testing.T) {
	tm := proxy.Timeouts{Dial: 2 * time.Second, Header: 300 * time.Millisecond, SlowHeader: 900 * time.Millisecond}
	dead := deadAddress(t)
	hang := hangingUpstream(t)
	tests := []struct {
		name     string
		upstream string
		method   string
		path     string
		body     []byte
		atLeast  time.Duration // the timeout that must have run out first
		contains []string
	}{
		{name: "nothing listening", upstream: dead, method: http.MethodHead, path: blobPath,
			contains: []string{faultRegistry, dead, "connection refused", "retry the push"}},
		{name: "nothing listening, upload", upstream: dead, method: http.MethodPatch, path: "/v2/team/app/blobs/uploads/u1", body: make([]byte, 1<<20),
			contains: []string{faultRegistry, dead, "connection refused", "retry the push"}},
		{name: "no answer to a HEAD", upstream: hang, method: http.MethodHead, path: blobPath, atLeast: tm.Header,
			contains: []string{faultRegistry, hang, "no response headers within 300ms"}},
		{name: "no answer to a GET", upstream: hang, method: http.MethodGet, path: "/v2/team/app/manifests/1.0", atLeast: tm.Header,
			contains: []string{faultRegistry, hang, "no response headers within 300ms", "retry the push"}},
		{name: "no answer to an upload's PUT", upstream: hang, method: http.MethodPut, path: "/v2/team/app/blobs/uploads/u1?digest=sha256:00", atLeast: tm.SlowHeader,
			contains: []string{faultRegistry, hang, "no response headers within 900ms"}},
		{name: "no answer to a PATCH", upstream: hang, method: http.MethodPatch, path: "/v2/team/app/blobs/uploads/u1", body: []byte("layer bytes"), atLeast: tm.SlowHeader,
			contains: []string{faultRegistry, hang, "no response headers within 900ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := proxyTo(t, "http://"+tt.upstream, proxy.NewTransport(tm))
			var body io.Reader
			if tt.body != nil {
				body = bytes.NewReader(tt.body)
			}
			code, msg, took := call(t, p, tt.method, tt.path, body)
			t.Logf("%s %s: %d after %v: %s", tt.method, tt.path, code, took.Round(time.Millisecond), strings.TrimSpace(msg))
			if code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", code)
			}
			if took < tt.atLeast {
				t.Errorf("answered after %v, before the %v timeout ran out", took, tt.atLeast)
			}
			if tt.method == http.MethodHead {
				return // no body to read
			}
			if !strings.Contains(msg, `"code":"UNAVAILABLE"`) {
				t.Errorf("body %s is not an UNAVAILABLE registry error", msg)
			}
			for _, s := range tt.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q: %s", s, msg)
				}
			}
		})
	}
}

// TestSlowTransfersNotCut: the timeouts bound waiting for an answer only.
// A blob that streams for longer than every timeout, an upload body sent
// slowly, and an upload's PUT answered after more than the short header
// timeout all get through.
func TestSlowTransfersNotCut(t *testing.T) {
	tm := proxy.Timeouts{Header: 200 * time.Millisecond, SlowHeader: 600 * time.Millisecond}
	const chunks, pause = 8, 150 * time.Millisecond // 1.2s in all, twice SlowHeader
	blob := make([]byte, chunks*4096)
	_, _ = rand.Read(blob)
	var uploaded []byte
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet: // headers at once, then the body slowly
			w.Header().Set("Content-Length", "32768")
			w.WriteHeader(http.StatusOK)
			for i := range chunks {
				_, _ = w.Write(blob[i*4096 : (i+1)*4096])
				w.(http.Flusher).Flush()
				time.Sleep(pause)
			}
		case http.MethodPatch:
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			uploaded = b
			mu.Unlock()
			w.WriteHeader(http.StatusAccepted)
		case http.MethodPut: // ECR checking the layer before it answers
			time.Sleep(2 * tm.Header)
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(up.Close)
	p := proxyTo(t, up.URL, proxy.NewTransport(tm))

	code, got, took := call(t, p, http.MethodGet, blobPath, nil)
	if code != http.StatusOK || got != string(blob) {
		t.Fatalf("slow blob download: %d, %d of %d bytes after %v", code, len(got), len(blob), took)
	}
	t.Logf("blob streamed for %v through timeouts of %v/%v", took.Round(time.Millisecond), tm.Header, tm.SlowHeader)

	pr, pw := io.Pipe()
	go func() {
		for i := range chunks {
			time.Sleep(pause)
			if _, err := pw.Write(blob[i*4096 : (i+1)*4096]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, _, took = call(t, p, http.MethodPatch, "/v2/team/app/blobs/uploads/u1", pr)
	mu.Lock()
	n := len(uploaded)
	same := bytes.Equal(uploaded, blob)
	mu.Unlock()
	if code != http.StatusAccepted || !same {
		t.Fatalf("slow upload: %d, upstream got %d of %d bytes after %v", code, n, len(blob), took)
	}

	code, msg, took := call(t, p, http.MethodPut, "/v2/team/app/blobs/uploads/u1?digest=sha256:00", nil)
	if code != http.StatusCreated {
		t.Fatalf("upload PUT answered after %v: %d %s, want 201 (it is allowed %v)", took, code, msg, tm.SlowHeader)
	}
}

// TestDefaultTimeouts: the defaults are stated, sane, and what the proxy
// uses when no transport is given.
func TestDefaultTimeouts(t *testing.T) {
	d := proxy.DefaultTimeouts
	if d.Dial <= 0 || d.Dial > 30*time.Second || d.TLSHandshake <= 0 || d.TLSHandshake > 30*time.Second ||
		d.Header < 30*time.Second || d.Header > 2*time.Minute || d.SlowHeader < d.Header || d.SlowHeader > 10*time.Minute {
		t.Fatalf("DefaultTimeouts = %+v", d)
	}
	// Without a transport, a dead upstream is still a quick registry error.
	dead := deadAddress(t)
	code, msg, _ := call(t, proxyTo(t, "http://"+dead, nil), http.MethodGet, "/v2/team/app/tags/list", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, dead) {
		t.Fatalf("default transport, dead upstream: %d %s", code, msg)
	}
}
