package proxy_test

// Bad input (issue #6, item 2): hostile names, oversized manifests, bogus
// Content-Length, header injection, hop-by-hop abuse, client credentials in
// registry mode and garbage from the upstream. Each gets a registry error
// (or net/http's own 400 for requests it cannot parse), a log line, never a
// panic, and a refused request never reaches the upstream.
//
// The proxy runs in front of the emulator as `ecrgate serve` wires it, with a
// recording front between the proxy and the emulator that sees every request
// the proxy sends upstream (registry and ECR API) and can answer garbage.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/proxy"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
	"github.com/ecrgate/ecrgate/pkg/server"
)

const badRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// badSeen is one request the proxy sent upstream.
type badSeen struct {
	method, path, rawQuery, target, auth string
	header                               http.Header
}

// badFront records what reaches the upstream and may answer in its place.
type badFront struct {
	e  *ecrfake.Emulator
	mu sync.Mutex
	// seen lists every request; answer, if set, may answer one itself.
	seen   []badSeen
	answer func(w http.ResponseWriter, r *http.Request) bool
}

func (f *badFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, badSeen{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery,
		target: r.Header.Get("X-Amz-Target"), auth: r.Header.Get("Authorization"), header: r.Header.Clone()})
	answer := f.answer
	f.mu.Unlock()
	if answer != nil && answer(w, r) {
		return
	}
	f.e.ServeHTTP(w, r)
}

func (f *badFront) setAnswer(a func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

// registry returns the registry requests seen (the ECR API ones aside).
func (f *badFront) registry() []badSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []badSeen
	for _, s := range f.seen {
		if s.target == "" {
			out = append(out, s)
		}
	}
	return out
}

// badLog is a log sink safe for concurrent use.
type badLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *badLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *badLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type badFixture struct {
	e       *ecrfake.Emulator
	front   *badFront
	addr    string // the registry-mode proxy, host:port
	logs    *badLog
	panics  *badLog       // net/http's own log: a panic in a handler lands here
	read    *atomic.Int64 // request body bytes the handler read, reset per request
	mkProxy func(mode proxy.Mode) http.Handler
	// base are the options of mkProxy's proxies, for tests that need others.
	base proxy.Options
	// logMissed: a log line was missing once; look no longer than needed.
	logMissed bool
}

// badStart runs the emulator behind a recording front and the registry-mode
// proxy, wired as server.Run wires it, on 127.0.0.1.
func badStart(t *testing.T) *badFixture {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	front := &badFront{e: e}
	fs := httptest.NewServer(front)
	t.Cleanup(fs.Close)

	dir := t.TempDir()
	env := []string{
		"AWS_ENDPOINT_URL_ECR=" + fs.URL, "AWS_ENDPOINT_URL_STS=" + fs.URL,
		"AWS_ACCESS_KEY_ID=" + e.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + e.SecretKey(), "AWS_REGION=" + e.Region(),
		"AWS_EC2_METADATA_DISABLED=true", "HOME=" + dir, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	yaml := fmt.Sprintf("default_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n", badRegistry, badRegistry, fs.URL)
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "ecrgate.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	logs := &badLog{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tokens := ecrauth.New(ecrauth.Options{Env: env, Logger: logger})
	ens, err := repocreate.New(repocreate.Options{Config: cfg, Env: env, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	f := &badFixture{e: e, front: front, logs: logs, panics: &badLog{}, read: &atomic.Int64{},
		base: proxy.Options{Resolve: server.Resolver(cfg), Ensurer: ens, Tokens: tokens, Logger: logger}}
	f.mkProxy = func(mode proxy.Mode) http.Handler {
		o := f.base
		o.Mode, o.AnswerPing = mode, mode == proxy.RegistryMode
		p, err := proxy.New(o)
		if err != nil {
			t.Fatal(err)
		}
		// Count what the handler reads of each request body.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = &badCounter{ReadCloser: r.Body, n: f.read}
			}
			p.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewUnstartedServer(f.mkProxy(proxy.RegistryMode))
	srv.Config.ErrorLog = log.New(f.panics, "", 0)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if s := f.panics.String(); strings.Contains(s, "panic") {
			t.Errorf("a handler panicked:\n%s", s)
		}
		if s := logs.String(); strings.Contains(s, "Basic ") || strings.Contains(s, "client-secret") {
			t.Errorf("a credential reached the log:\n%s", s)
		}
		// Every log line is one record: hostile bytes forged none.
		for _, l := range strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n") {
			if l != "" && !strings.HasPrefix(l, "time=") {
				t.Errorf("log line not written by the handler (forged by a hostile value?): %q", l)
			}
		}
	})
	f.addr = srv.Listener.Addr().String()
	return f
}

type badCounter struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *badCounter) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// raw writes head byte for byte to the proxy (and body, if given, from
// another goroutine, ignoring write errors: the proxy may stop reading) and
// reads one response.
func (f *badFixture) raw(t *testing.T, head string, body func(io.Writer)) (*http.Response, []byte) {
	t.Helper()
	return badRaw(t, f.addr, head, body)
}

func badRaw(t *testing.T, addr, head string, body func(io.Writer)) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		conn.Close()
		wg.Wait()
	}()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(conn)
		}()
	}
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read the answer to %.200q: %v", head, err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil && resp.Header.Get("Connection") != "close" {
		t.Fatalf("read the body of the answer to %.200q: %v", head, err)
	}
	return resp, b
}

// regCode returns the code of a registry error body, failing the test if
// the body is not one.
func regCode(t *testing.T, what string, resp *http.Response, body []byte) (code, msg string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		t.Errorf("%s: %d %q is not a registry error (%v)", what, resp.StatusCode, body, err)
		return "", ""
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: registry error with Content-Type %q", what, ct)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

// logGrew waits for the log to hold a line, written after mark, that
// contains every one of want. The handler logs after it has answered, so
// the line may come a moment after the response.
func (f *badFixture) logGrew(t *testing.T, what string, mark int, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	if f.logMissed {
		deadline = time.Now().Add(100 * time.Millisecond)
	}
	for {
		s := f.logs.String()[mark:]
		for _, l := range strings.Split(s, "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok && l != "" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no log line with %q; logs since:\n%s", what, want, s)
			f.logMissed = true
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Hostile repository names, on reads and on writes: NAME_INVALID as a
// registry error, one log line each, nothing sent upstream, nothing created.
func TestHostileNames(t *testing.T) {
	f := badStart(t)
	long := strings.Repeat("a", 257)
	huge := strings.Repeat("ab/", 40000) + "c" // 120 kB, under net/http's header limit
	names := []struct{ what, onWire string }{
		{"dot-dot", ".."},
		{"dot-dot inside", "team/../app"},
		{"dot-dot at the end", "team/.."},
		{"single dot", "team/./app"},
		{"encoded dot-dot", "%2e%2e"},
		{"encoded dot-dot inside", "team/%2E%2E/app"},
		{"encoded slash", "team%2Fapp"},
		{"encoded letter", "te%61m/app"},
		{"upper case", "Team/App"},
		{"257 characters", long},
		{"empty segment", "team//app"},
		{"leading slash", "/team/app"},
		{"trailing slash", "team/app/"},
		{"unicode, encoded", "t%C3%A9am/app"},
		{"unicode, raw bytes", "téam/app"},
		{"NUL, encoded", "team/app%00"},
		{"CR LF header injection", "team/app%0d%0aX-Injected:%20yes"},
		{"tab", "team/a%09pp"},
		{"space", "team/a%20pp"},
		{"one character", "a"},
		{"very long path", huge},
	}
	ops := []struct{ method, suffix string }{
		{http.MethodPost, "/blobs/uploads/"},
		{http.MethodGet, "/manifests/latest"},
		{http.MethodHead, "/blobs/sha256:" + strings.Repeat("0", 64)},
		{http.MethodGet, "/tags/list"},
		{http.MethodPut, "/manifests/1.0"},
		{http.MethodPatch, "/blobs/uploads/u1"},
	}
	for _, n := range names {
		for _, op := range ops {
			what := fmt.Sprintf("%s %s (%.40s…)", op.method, op.suffix, n.what)
			mark := len(f.logs.String())
			body := `{"schemaVersion":2}`
			resp, b := f.raw(t, fmt.Sprintf("%s /v2/%s%s HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				op.method, n.onWire, op.suffix, len(body), body), nil)
			if resp.Header.Get("X-Injected") != "" {
				t.Errorf("%s: header injected into the answer", what)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400 NAME_INVALID", what, resp.StatusCode)
			}
			if op.method == http.MethodHead {
				continue // no body; the status says it
			}
			if code, _ := regCode(t, what, resp, b); code != "NAME_INVALID" {
				t.Errorf("%s: %s, want NAME_INVALID", what, code)
			}
			f.logGrew(t, what, mark, `msg="request refused"`, "err.code=NAME_INVALID")
		}
	}
	if seen := f.front.registry(); len(seen) != 0 {
		t.Errorf("%d hostile requests reached the upstream registry, e.g. %s %q", len(seen), seen[0].method, seen[0].path)
	}
	for _, op := range []string{"CreateRepository", "DescribeRepositories", "GetAuthorizationToken"} {
		if n := f.e.Calls(op); n != 0 {
			t.Errorf("%s called %d times for hostile names", op, n)
		}
	}
	if reps := f.e.Repositories(""); len(reps) != 0 {
		t.Errorf("repositories created: %q", reps)
	}

	// Paths that are no registry route at all (a dot segment as the
	// reference, a GET that would start an upload) are refused as such.
	for _, path := range []string{"/v2/team/app/manifests/..", "/v2/team/app/blobs/uploads/.", "/v2/team/app/manifests/%2e%2e"} {
		resp, b := f.raw(t, "PUT "+path+" HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
		if code, _ := regCode(t, path, resp, b); resp.StatusCode < 400 || resp.StatusCode >= 500 || code == "" {
			t.Errorf("PUT %s: %d %s", path, resp.StatusCode, b)
		}
	}
	resp, b := f.raw(t, "GET /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
	if code, _ := regCode(t, "GET of an upload start", resp, b); code != "UNSUPPORTED" {
		t.Errorf("GET …/blobs/uploads/: %d %s, want UNSUPPORTED", resp.StatusCode, b)
	}
	if f.e.Calls("CreateRepository") != 0 || len(f.front.registry()) != 0 {
		t.Errorf("a path outside the API reached the upstream or created a repository")
	}

	// A path past net/http's header limit never reaches the handler.
	resp, _ = f.raw(t, "GET /v2/"+strings.Repeat("a/", 600<<10)+"b/tags/list HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1.2 MB path: %d, want 431", resp.StatusCode)
	}
}

// An oversized manifest is refused without reading past ECR's 4 MiB cap,
// whether its Content-Length says so up front or a chunked body grows past
// it, and creates no repository.
func TestOversizedManifest(t *testing.T) {
	f := badStart(t)
	const max = proxy.MaxManifestSize
	filler := bytes.Repeat([]byte(" "), 64<<10)
	var sent atomic.Int64
	tests := []struct {
		what string
		head string
		body func(io.Writer)
		// most is the most the handler may read of the body.
		most int64
	}{
		{"declared Content-Length over the cap", fmt.Sprintf("PUT /v2/big/declared/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: %d\r\n\r\n", 8*max),
			func(w io.Writer) {
				_, _ = w.Write([]byte("{"))
				for i := 0; i < 8*max/len(filler); i++ {
					n, err := w.Write(filler)
					sent.Add(int64(n))
					if err != nil {
						return
					}
				}
			}, 0},
		{"chunked body growing past the cap", "PUT /v2/big/chunked/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n",
			func(w io.Writer) {
				for i := 0; i < 16*max/len(filler); i++ {
					if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(filler), filler); err != nil {
						return
					}
				}
				_, _ = io.WriteString(w, "0\r\n\r\n")
			}, max + 1},
	}
	for _, tt := range tests {
		f.read.Store(0)
		mark := len(f.logs.String())
		resp, b := f.raw(t, tt.head, tt.body)
		code, msg := regCode(t, tt.what, resp, b)
		if resp.StatusCode != http.StatusBadRequest || code != "MANIFEST_INVALID" || !strings.Contains(msg, "limit") {
			t.Errorf("%s: %d %s %q, want 400 MANIFEST_INVALID naming the limit", tt.what, resp.StatusCode, code, msg)
		}
		if n := f.read.Load(); n > tt.most {
			t.Errorf("%s: the handler read %d bytes, more than %d", tt.what, n, tt.most)
		}
		f.logGrew(t, tt.what, mark, `msg="request refused"`, "err.code=MANIFEST_INVALID")
	}
	if n := f.read.Load(); n < max {
		t.Errorf("the chunked body was read only to %d bytes: the count proves nothing", n)
	}
	if seen := f.front.registry(); len(seen) != 0 {
		t.Errorf("an oversized manifest reached the upstream: %s %s", seen[0].method, seen[0].path)
	}
	if n := f.e.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository called %d times for refused manifests", n)
	}
}

// Bogus Content-Length headers: net/http refuses what it cannot frame
// (400, before any handler runs); a length that lies about the body gives
// MANIFEST_INVALID; nothing reaches the upstream and the proxy keeps serving.
func TestBogusContentLength(t *testing.T) {
	f := badStart(t)
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`
	head := "PUT /v2/cl/app/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
	for _, tt := range []struct {
		what, headers, body string
		code                string // "" for net/http's own 400
	}{
		{"negative", "Content-Length: -1\r\n", manifest, ""},
		{"not a number", "Content-Length: abc\r\n", manifest, ""},
		{"two different values", "Content-Length: 10\r\nContent-Length: 20\r\n", manifest, ""},
		{"with chunked too", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", ""},
		{"overflowing", "Content-Length: 99999999999999999999999\r\n", manifest, ""},
		{"shorter than the body", fmt.Sprintf("Content-Length: %d\r\n", len(manifest)/2), manifest, "MANIFEST_INVALID"},
		{"longer than the body", fmt.Sprintf("Content-Length: %d\r\n", len(manifest)+100), manifest, "MANIFEST_INVALID"},
	} {
		mark := len(f.logs.String())
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
		_, _ = io.WriteString(conn, head+tt.headers+"\r\n"+tt.body)
		if tt.what == "longer than the body" {
			_ = conn.(*net.TCPConn).CloseWrite() // the body ends early
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tt.what, resp.StatusCode)
		}
		if tt.code != "" {
			if code, _ := regCode(t, tt.what, resp, b); code != tt.code {
				t.Errorf("%s: %s, want %s", tt.what, code, tt.code)
			}
			f.logGrew(t, tt.what, mark, `msg="request refused"`, "err.code="+tt.code)
		}
	}
	if seen := f.front.registry(); len(seen) != 0 {
		t.Errorf("a request with a bogus Content-Length reached the upstream: %s %s", seen[0].method, seen[0].path)
	}
	if n := f.e.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository called %d times", n)
	}
	// Still serving.
	resp, _ := f.raw(t, "GET /v2/ HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ after the bogus requests: %d", resp.StatusCode)
	}
}

// CR/LF smuggled into what the proxy copies or builds (query values it
// forwards, the mount source it rewrites, Location headers it rewrites)
// never becomes a header, upstream or back to the client.
func TestHeaderInjection(t *testing.T) {
	f := badStart(t)
	// A repository to talk about.
	resp, _ := f.raw(t, "POST /v2/hdr/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload start: %d", resp.StatusCode)
	}
	inj := "%0d%0aX-Injected:%20yes%0d%0a"
	for _, tt := range []struct{ what, req string }{
		{"ns= query", "GET /v2/hdr/app/tags/list?ns=docker.io" + inj + " HTTP/1.1\r\n"},
		{"n= and last= query", "GET /v2/hdr/app/tags/list?n=1" + inj + "&last=a" + inj + " HTTP/1.1\r\n"},
		{"mount source", "POST /v2/hdr/app/blobs/uploads/?mount=sha256:" + strings.Repeat("1", 64) + "&from=hdr/src" + inj + " HTTP/1.1\r\nContent-Length: 0\r\n"},
		{"reference", "GET /v2/hdr/app/manifests/latest" + inj + " HTTP/1.1\r\n"},
		{"upload id", "GET /v2/hdr/app/blobs/uploads/x" + inj + " HTTP/1.1\r\n"},
	} {
		before := len(f.front.registry())
		resp, b := f.raw(t, tt.req+"Host: localhost:5000\r\nConnection: close\r\n\r\n", nil)
		for k, v := range resp.Header {
			if strings.EqualFold(k, "X-Injected") || strings.ContainsAny(strings.Join(v, ""), "\r\n") {
				t.Errorf("%s: answer header %s: %q", tt.what, k, v)
			}
		}
		if resp.StatusCode >= 500 {
			t.Errorf("%s: %d %s", tt.what, resp.StatusCode, b)
		}
		for _, s := range f.front.registry()[before:] {
			if s.header.Get("X-Injected") != "" || strings.ContainsAny(s.rawQuery+s.path, "\r\n") && strings.Contains(s.rawQuery, "\r") {
				t.Errorf("%s: upstream got an injected header or raw CR/LF: %q %q %v", tt.what, s.path, s.rawQuery, s.header)
			}
			if strings.Contains(s.rawQuery, "from=") {
				t.Errorf("%s: a mount from an invalid name was forwarded: %q", tt.what, s.rawQuery)
			}
		}
	}

	// Location rewriting: an upstream Location with encoded CR/LF stays
	// encoded; it cannot split the proxy's answer.
	f.front.setAnswer(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/v2/hdr/loc/") {
			return false
		}
		w.Header().Set("Location", "/v2/hdr/loc/blobs/uploads/u1?_state="+inj+"Set-Cookie:%20a=b")
		w.Header().Set("Link", "</v2/hdr/loc/tags/list?last="+inj+">; rel=\"next\"")
		w.WriteHeader(http.StatusAccepted)
		return true
	})
	resp, _ = f.raw(t, "POST /v2/hdr/loc/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/hdr/loc/blobs/uploads/u1?") || resp.Header.Get("Set-Cookie") != "" ||
		resp.Header.Get("X-Injected") != "" || strings.ContainsAny(loc+resp.Header.Get("Link"), "\r\n") {
		t.Errorf("rewritten Location %q Link %q, headers %v", loc, resp.Header.Get("Link"), resp.Header)
	}
}

// In registry mode the upstream sees the proxy's own token only: a client's
// Authorization is dropped, also when it names it hop-by-hop, and never
// logged. (Intercept mode passes the client's own token on, as documented.)
func TestClientAuthorizationAndHopByHop(t *testing.T) {
	f := badStart(t)
	resp, _ := f.raw(t, "POST /v2/auth/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload start: %d", resp.StatusCode)
	}
	client := "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:client-secret"))
	for _, tt := range []struct{ what, headers string }{
		{"Authorization", "Authorization: " + client + "\r\n"},
		{"Connection: Authorization", "Authorization: " + client + "\r\nConnection: Authorization\r\n"},
		{"Bearer", "Authorization: Bearer client-secret\r\n"},
		{"two Authorization headers", "Authorization: " + client + "\r\nAuthorization: Bearer client-secret\r\n"},
		{"Connection naming proxy headers", "Authorization: " + client + "\r\nConnection: Docker-Distribution-Api-Version, X-Hop\r\nX-Hop: 1\r\n"},
		{"Proxy-Authorization", "Proxy-Authorization: " + client + "\r\n"},
	} {
		before := len(f.front.registry())
		resp, b := f.raw(t, "GET /v2/auth/app/tags/list HTTP/1.1\r\nHost: localhost:5000\r\n"+tt.headers+"Connection: close\r\n\r\n", nil)
		// The repository has no tags yet: NAME_UNKNOWN, past authentication.
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || !bytes.Contains(b, []byte("NAME_UNKNOWN")) {
			t.Errorf("%s: %d %s, want the proxy's token to work", tt.what, resp.StatusCode, b)
		}
		seen := f.front.registry()[before:]
		if len(seen) == 0 {
			t.Fatalf("%s: nothing reached the upstream", tt.what)
		}
		for _, s := range seen {
			user, _, _ := strings.Cut(decodeBasic(s.auth), ":")
			if len(s.header.Values("Authorization")) != 1 || user != "AWS" || strings.Contains(s.auth, "client-secret") || strings.Contains(decodeBasic(s.auth), "client-secret") {
				t.Errorf("%s: upstream Authorization %q, want the proxy's own token only", tt.what, s.header.Values("Authorization"))
			}
			if s.header.Get("X-Hop") != "" || s.header.Get("Proxy-Authorization") != "" {
				t.Errorf("%s: hop-by-hop header forwarded: %v", tt.what, s.header)
			}
		}
	}

	// Intercept mode: the client's own credentials go upstream, verbatim
	// and alone.
	srv := httptest.NewServer(f.mkProxy(proxy.InterceptMode))
	defer srv.Close()
	before := len(f.front.registry())
	resp, _ = badRaw(t, srv.Listener.Addr().String(), "GET /v2/auth/app/tags/list HTTP/1.1\r\nHost: localhost:5000\r\nAuthorization: "+client+"\r\nConnection: close\r\n\r\n", nil)
	seen := f.front.registry()[before:]
	if len(seen) != 1 || seen[0].auth != client || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("intercept mode: client credentials not passed on (%d requests, status %d)", len(seen), resp.StatusCode)
	}
}

func decodeBasic(h string) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	if err != nil {
		return ""
	}
	return string(b)
}

// Garbage from the upstream — the ECR API answering DescribeRepositories or
// CreateRepository with something that is not JSON, the registry answering
// errors that are not registry errors — reaches the client as a registry
// error with a log line, and nothing is pushed on a failed ensure.
func TestMalformedUpstream(t *testing.T) {
	f := badStart(t)
	api := func(op string, status int, body string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+op) {
				return false
			}
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return true
		}
	}
	for i, tt := range []struct {
		what   string
		answer func(http.ResponseWriter, *http.Request) bool
	}{
		{"DescribeRepositories not JSON", api("DescribeRepositories", 200, "<html>gateway</html>")},
		{"DescribeRepositories truncated JSON", api("DescribeRepositories", 200, `{"repositories":[{"repositoryName":`)},
		{"DescribeRepositories wrong types", api("DescribeRepositories", 200, `{"repositories":"yes","nextToken":7}`)},
		{"DescribeRepositories error not JSON", api("DescribeRepositories", 400, "\x00\xff garbage")},
		{"CreateRepository not JSON", api("CreateRepository", 200, "<<<")},
		{"CreateRepository error not JSON", api("CreateRepository", 500, "{")},
		{"CreateRepository empty error", api("CreateRepository", 403, "")},
	} {
		f.front.setAnswer(tt.answer)
		name := fmt.Sprintf("garbage/api%d", i)
		before := len(f.front.registry())
		mark := len(f.logs.String())
		resp, b := f.raw(t, "POST /v2/"+name+"/blobs/uploads/ HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", nil)
		f.front.setAnswer(nil)
		code, msg := regCode(t, tt.what, resp, b)
		if resp.StatusCode < 400 || code == "" || msg == "" {
			t.Errorf("%s: %d %s %q", tt.what, resp.StatusCode, code, msg)
		}
		f.logGrew(t, tt.what, mark, `msg="request refused"`, "err.code="+code)
		for _, s := range f.front.registry()[before:] {
			if strings.Contains(s.path, name) {
				t.Errorf("%s: pushed after a failed ensure: %s %s", tt.what, s.method, s.path)
			}
		}
	}

	// The registry answers errors that are not registry errors.
	for _, tt := range []struct {
		what        string
		status      int
		contentType string
		body        string
	}{
		{"HTML 404", 404, "text/html", "<html><body>Not Found</body></html>"},
		{"truncated JSON 500", 500, "application/json", `{"errors":[{"code":`},
		{"empty 502", 502, "", ""},
		{"JSON without errors", 400, "application/json", `{"message":"bad"}`},
		{"binary 403", 403, "application/octet-stream", "\x00\x01\x02\xff"},
	} {
		f.front.setAnswer(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/v2/garbage/reg/manifests/1" {
				return false
			}
			if tt.contentType != "" {
				w.Header().Set("Content-Type", tt.contentType)
			}
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
			return true
		})
		mark := len(f.logs.String())
		resp, b := f.raw(t, "GET /v2/garbage/reg/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
		code, msg := regCode(t, tt.what, resp, b)
		if resp.StatusCode != tt.status || code != "UNKNOWN" || !strings.Contains(msg, "not a registry error") {
			t.Errorf("%s: %d %s %q, want %d UNKNOWN saying so", tt.what, resp.StatusCode, code, msg, tt.status)
		}
		f.logGrew(t, tt.what, mark, `msg="upstream error is not a registry error"`, fmt.Sprintf("status=%d", tt.status))
	}
	f.front.setAnswer(nil)

	// A real registry error passes through untouched.
	resp, b := f.raw(t, "GET /v2/garbage/missing/manifests/1 HTTP/1.1\r\nHost: localhost:5000\r\nConnection: close\r\n\r\n", nil)
	if code, _ := regCode(t, "registry error", resp, b); resp.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" {
		t.Errorf("a real registry error: %d %s", resp.StatusCode, b)
	}
}
