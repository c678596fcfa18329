package server_test

// Security properties of `ecrgate serve` (issue #6, item 3), each with a
// test that fails when the property breaks: loopback-only listeners, no
// request makes the proxy connect to a host other than the configured
// upstream, intercept mode decrypts only the configured registries, and no
// token or AWS secret reaches a log, a metric, an error body or the audit
// file. See SECURITY.md.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/listen"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// --- listeners -----------------------------------------------------------

// The defaults listen on loopback only, and a listen address off loopback
// is refused before anything is bound, naming the key, for each of the
// three listeners: by config.Parse with the line, and by server.Run for a
// Config built in code. Only allow_remote with tls allows it (see
// TestSharedProxy*).
func TestDefaultListenersAreLoopback(t *testing.T) {
	cfg, err := config.Parse([]byte("default_registry: "+registry+"\n"), "x.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, addr := range map[string]string{"listen": cfg.Listen, "admin_listen": cfg.AdminListen, "intercept.listen": cfg.Intercept.Listen} {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("default %s = %q, want a loopback address", key, addr)
		}
		if err := listen.CheckLoopback(addr); err != nil {
			t.Errorf("default %s: %v", key, err)
		}
	}

	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := localca.Init(caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yaml, key, why string }{
		{"listen: 0.0.0.0:0\n", "listen", "listens on every network interface"},
		{"listen: '[::]:0'\n", "listen", "listens on every network interface"},
		{"admin_listen: 192.0.2.1:0\n", "admin_listen", "is not a loopback address"},
		{"admin_listen: ':0'\n", "admin_listen", "listens on every network interface"},
		{"intercept: {listen: 'registry.example.com:0'}\n", "intercept.listen", "names a host other than localhost"},
		{"intercept: {listen: '0.0.0.0:0'}\n", "intercept.listen", "listens on every network interface"},
	} {
		t.Run(tc.key+" "+strings.TrimSpace(tc.yaml), func(t *testing.T) {
			if _, err := config.Parse([]byte(tc.yaml), "x.yaml", nil); err == nil ||
				!strings.HasPrefix(err.Error(), "x.yaml:1: "+tc.key+": ") || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("config.Parse: %v; want x.yaml:1: %s: … %s", err, tc.key, tc.why)
			}
			// The same address in a Config built in code, which nothing
			// validated: Run refuses it.
			cfg := config.Default(nil)
			addr := strings.Trim(strings.TrimSpace(tc.yaml[strings.LastIndex(tc.yaml, ": ")+2:]), "'}")
			switch tc.key {
			case "listen":
				cfg.Listen = addr
			case "admin_listen":
				cfg.AdminListen = addr
			default:
				cfg.Intercept.Listen = addr
			}
			// Listeners the test opened itself on loopback stand in for
			// the ones not under test.
			given := map[string]net.Listener{}
			for name, key := range map[string]string{"registry": "listen", "admin": "admin_listen"} {
				if key != tc.key {
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { ln.Close() })
					given[name] = ln
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = server.Run(ctx, server.Options{Config: cfg, Env: []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"},
				Listeners: given, CADir: caDir, ShutdownTimeout: time.Second})
			if err == nil {
				t.Fatal("server.Run accepted a listen address off loopback")
			}
			if !strings.HasPrefix(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.why) ||
				!strings.Contains(err.Error(), "ecrgate listens on loopback only") {
				t.Errorf("error = %v; want it to name %s, say %q and what to do", err, tc.key, tc.why)
			}
		})
	}
}

// --- the proxy connects to nothing but its upstream ------------------------

// countingListener is the "evil" host: it counts connections and answers
// none.
type countingListener struct {
	ln    net.Listener
	conns atomic.Int64
}

func startCounting(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *countingListener) addr() string { return c.ln.Addr().String() }

// dialRecorder is the proxy's upstream transport: it records every address
// the proxy dials and refuses any that is not on loopback (tests never
// leave the machine).
type dialRecorder struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialRecorder) transport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d.mu.Lock()
			d.addrs = append(d.addrs, addr)
			d.mu.Unlock()
			if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
				return nil, fmt.Errorf("test: dial to %s refused", addr)
			}
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 16,
	}
}

// others returns the dialled addresses other than allowed.
func (d *dialRecorder) others(allowed ...string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, a := range d.addrs {
		ok := false
		for _, w := range allowed {
			ok = ok || a == w
		}
		if !ok {
			out = append(out, a)
		}
	}
	return out
}

func (d *dialRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.addrs)
}

// syncLog is a log sink safe for concurrent use.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type secServer struct {
	proxy, admin, intercept string
	logs                    *syncLog
	home                    string
	stop                    func()
}

type secOptions struct {
	yaml      string            // the whole config
	env       []string          // process environment for the server (set with t.Setenv)
	transport http.RoundTripper // upstream transport
	caDir     string            // a CA here turns intercept mode on
	logFormat string            // "json" or text
	idle      time.Duration     // the listeners' idle timeout (default: server's)
}

// secEnv is the environment of a server against e: the emulator's, with
// a private HOME, cache and empty AWS config files, applied to the process
// (the AWS SDK reads it there).
func secEnv(t *testing.T, e *ecrfake.Emulator, extra ...string) []string {
	t.Helper()
	home := t.TempDir()
	env := append(e.Env(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(home, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "aws-credentials"))
	env = append(env, extra...)
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// secStart runs server.Run in process until stop (or the test's end).
func secStart(t *testing.T, o secOptions) *secServer {
	t.Helper()
	cfg, err := config.Parse([]byte(o.yaml), filepath.Join(t.TempDir(), "ecrgate.yaml"), o.env)
	if err != nil {
		t.Fatal(err)
	}
	given := map[string]net.Listener{}
	for _, n := range []string{"registry", "admin", "intercept"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		given[n] = ln
	}
	s := &secServer{proxy: given["registry"].Addr().String(), admin: given["admin"].Addr().String(), logs: &syncLog{}, home: envValue(o.env, "HOME")}
	var h slog.Handler = slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	caDir := o.caDir
	if caDir == "" {
		caDir = filepath.Join(t.TempDir(), "no-ca")
		given["intercept"].Close()
		delete(given, "intercept")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var iaddr atomic.Value
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: o.env, Logger: slog.New(h), Listeners: given, Transport: o.transport,
			CADir: caDir, ShutdownTimeout: 30 * time.Second, IdleTimeout: o.idle, InterceptReady: func(a net.Addr) { iaddr.Store(a.String()) }})
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server.Run: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server.Run ended early: %v\n%s", err, s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not become healthy:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.caDir != "" {
		for iaddr.Load() == nil {
			if time.Now().After(deadline) {
				t.Fatalf("intercept mode did not start:\n%s", s.logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.intercept = iaddr.Load().(string)
	}
	return s
}

// rawRequest writes req byte for byte to addr and reads one response.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method}) // a HEAD answer has no body
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", strings.SplitN(req, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

// Requests crafted to point the registry-mode proxy somewhere else —
// absolute-form URIs, Host and forwarding headers, ?ns=, dot segments,
// names that look like hosts, a cross-repository mount from another host,
// CONNECT — reach the configured upstream or nothing: the "evil" host gets
// no connection and the proxy dials nothing but the upstream.
func TestRegistryModeConnectsOnlyToItsUpstream(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	evil := startCounting(t)
	dials := &dialRecorder{}
	env := secEnv(t, e)
	upstream := strings.TrimPrefix(e.URL(), "http://")
	s := secStart(t, secOptions{env: env, transport: dials.transport(), yaml: fmt.Sprintf(
		"default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, e.URL())})
	// A repository to talk about.
	ref, _ := name.ParseReference(s.proxy+"/ssrf/app:1", name.Insecure)
	if err := remote.Write(ref, randomImage(t, 512, 1)); err != nil {
		t.Fatal(err)
	}
	if dials.count() == 0 {
		t.Fatal("the dial recorder saw no dial: it is not the proxy's transport")
	}

	ev := evil.addr()
	zero := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct{ name, req string }{
		{"absolute-form GET", "GET http://" + ev + "/v2/ssrf/app/manifests/1 HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
		{"absolute-form HEAD", "HEAD http://" + ev + "/v2/ssrf/app/blobs/" + zero + " HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
		{"absolute-form https", "GET https://" + ev + "/v2/ssrf/app/tags/list HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
		{"absolute-form upload start", "POST http://" + ev + "/v2/ssrf/app/blobs/uploads/ HTTP/1.1\r\nHost: " + ev + "\r\nContent-Length: 0\r\n\r\n"},
		{"absolute-form upload chunk", "PATCH http://" + ev + "/v2/ssrf/app/blobs/uploads/x?_state=y HTTP/1.1\r\nHost: " + ev + "\r\nContent-Length: 1\r\n\r\nx"},
		{"Host header", "GET /v2/ssrf/app/manifests/1 HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
		{"forwarding headers", "GET /v2/ssrf/app/tags/list HTTP/1.1\r\nHost: " + s.proxy + "\r\nX-Forwarded-Host: " + ev + "\r\nForwarded: host=" + ev + "\r\nX-Forwarded-Proto: http\r\nX-Original-URL: http://" + ev + "/\r\n\r\n"},
		{"ns names another host", "GET /v2/ssrf/app/manifests/1?ns=evil.example.com HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"ns names the evil host:port", "GET /v2/ssrf/app/manifests/1?ns=" + ev + " HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"ns names a public registry", "GET /v2/ssrf/app/manifests/1?ns=registry-1.docker.io HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"ns names another ECR registry", "HEAD /v2/ssrf/app/manifests/1?ns=999999999999.dkr.ecr.us-east-1.amazonaws.com HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"two ns", "GET /v2/ssrf/app/manifests/1?ns=" + registry + "&ns=" + ev + " HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"dot segments", "GET /v2/../" + ev + "/v2/x/manifests/1 HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"escaped dot segments", "GET /v2/%2e%2e/%2e%2e/x/manifests/1 HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"double slash", "GET //" + ev + "/v2/ssrf/app/manifests/1 HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"name that is a host:port", "GET /v2/" + ev + "/x/manifests/1 HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"name that is a domain", "GET /v2/evil.example.com/x/manifests/1 HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"name with an escaped colon", "GET /v2/127.0.0.1%3A" + strings.Split(ev, ":")[1] + "/x/tags/list HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n"},
		{"mount from another host", "POST /v2/ssrf/app/blobs/uploads/?mount=" + zero + "&from=" + ev + "/x HTTP/1.1\r\nHost: " + s.proxy + "\r\nContent-Length: 0\r\n\r\n"},
		{"CONNECT", "CONNECT " + ev + " HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
		{"ping with absolute-form", "GET http://" + ev + "/v2/ HTTP/1.1\r\nHost: " + ev + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawRequest(t, s.proxy, tc.req)
			if n := evil.conns.Load(); n != 0 {
				t.Fatalf("the evil host got %d connections (answer %d %s)", n, resp.StatusCode, body)
			}
			if other := dials.others(upstream); len(other) > 0 {
				t.Fatalf("the proxy dialled %v (answer %d %s)", other, resp.StatusCode, body)
			}
		})
	}
	// The ns refusal is a registry error that says what to do.
	resp, body := rawRequest(t, s.proxy, "GET /v2/ssrf/app/manifests/1?ns=evil.example.com HTTP/1.1\r\nHost: "+s.proxy+"\r\n\r\n")
	if resp.StatusCode < 400 || !strings.Contains(body, "DENIED") || !strings.Contains(body, "evil.example.com") {
		t.Errorf("ns naming another host: %d %s; want DENIED", resp.StatusCode, body)
	}
}

// Redirects and auth challenges from the upstream that point elsewhere are
// never followed by the proxy: a blob redirect (as to S3) and an upload
// Location on another host go to the client untouched, and a
// WWW-Authenticate realm is never fetched.
func TestUpstreamRedirectsAreNotFollowed(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	evil := startCounting(t)
	ev := evil.addr()
	var upstreamHits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/"):
			w.Header().Set("Location", "http://"+ev+"/v2/redir/app/blobs/uploads/elsewhere")
			w.WriteHeader(http.StatusAccepted)
		case strings.Contains(r.URL.Path, "/blobs/"):
			http.Redirect(w, r, "http://"+ev+"/bucket/blob?X-Amz-Signature=abc", http.StatusTemporaryRedirect)
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+ev+`/token",service="evil"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(up.Close)
	dials := &dialRecorder{}
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, transport: dials.transport(), yaml: fmt.Sprintf(
		"default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, up.URL)})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	zero := "sha256:" + strings.Repeat("0", 64)

	resp, err := noFollow.Get("http://" + s.proxy + "/v2/redir/app/blobs/" + zero)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "http://"+ev+"/bucket/") {
		t.Errorf("blob redirect: %d Location %q; want the upstream's 307 untouched", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noFollow.Post("http://"+s.proxy+"/v2/redir/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") != "http://"+ev+"/v2/redir/app/blobs/uploads/elsewhere" {
		t.Errorf("upload start: %d Location %q; want the foreign Location untouched", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noFollow.Get("http://" + s.proxy + "/v2/redir/app/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("manifest behind a foreign realm: %d, want the upstream's 401", resp.StatusCode)
	}
	if upstreamHits.Load() < 3 {
		t.Fatalf("the upstream saw %d requests; the test did not reach it", upstreamHits.Load())
	}
	if n := evil.conns.Load(); n != 0 {
		t.Errorf("the proxy connected to the redirect target %d times", n)
	}
	if other := dials.others(strings.TrimPrefix(up.URL, "http://")); len(other) > 0 {
		t.Errorf("the proxy dialled %v", other)
	}
}

// --- intercept mode decrypts only the configured registries -------------

// connectTLS sends CONNECT authority to the intercept listener and, when it
// is answered 200, a TLS handshake for serverName trusting roots. It returns
// the CONNECT status and the certificates the server presented.
func connectTLS(t *testing.T, proxyAddr, authority, serverName string, roots *x509.CertPool) (int, []*x509.Certificate, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	var seen []*x509.Certificate
	tc := tls.Client(&bufConn{Conn: c, r: br}, &tls.Config{ServerName: serverName, RootCAs: roots,
		// Without a server name Go's client sends no SNI and needs this to
		// try; VerifyConnection still records what the server presented.
		InsecureSkipVerify: serverName == "",
		VerifyConnection:   func(cs tls.ConnectionState) error { seen = cs.PeerCertificates; return nil }})
	err = tc.Handshake()
	if err == nil {
		t.Cleanup(func() { tc.Close() })
	}
	return resp.StatusCode, seen, err
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// A CONNECT to a registry the config does not name (another account, or the
// right host on another port) is refused when tunnel_others is off and never
// answered with a certificate of ours; one to the configured registry is
// decrypted with a leaf of the local CA; with tunnel_others on, another host
// is tunnelled and its own certificate reaches the client. A decrypted
// request whose Host names another registry still goes to the CONNECT
// host's upstream.
func TestInterceptDecryptsOnlyConfiguredRegistries(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ours := x509.NewCertPool()
	ours.AddCert(ca.Certificate())
	dials := &dialRecorder{}
	env := secEnv(t, e)
	base := fmt.Sprintf("default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, e.URL())
	s := secStart(t, secOptions{env: env, transport: dials.transport(), caDir: caDir, yaml: base + "intercept: {tunnel_others: false}\n"})

	const other = "999999999999.dkr.ecr.us-east-1.amazonaws.com"
	for _, authority := range []string{other + ":443", registry + ":8443", "sts.us-east-1.amazonaws.com:443", "127.0.0.1:443"} {
		code, certs, _ := connectTLS(t, s.intercept, authority, strings.Split(authority, ":")[0], ours)
		if code != http.StatusForbidden || certs != nil {
			t.Errorf("CONNECT %s: %d, %d certificates; want 403 and no TLS", authority, code, len(certs))
		}
	}
	resp, body := rawRequest(t, s.intercept, "GET http://"+registry+"/v2/ HTTP/1.1\r\nHost: "+registry+"\r\n\r\n")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain-HTTP request for the registry: %d %s; want 403", resp.StatusCode, body)
	}

	// The configured registry: decrypted, with a leaf of the local CA.
	code, certs, err := connectTLS(t, s.intercept, registry+":443", registry, ours)
	if code != http.StatusOK || err != nil || len(certs) == 0 || !bytes.Equal(certs[0].RawIssuer, ca.Certificate().RawSubject) {
		t.Fatalf("CONNECT %s: %d, %v; want a leaf of the local CA", registry, code, err)
	}
	// An SNI other than the CONNECT host gets no certificate.
	if code, _, err := connectTLS(t, s.intercept, registry+":443", other, ours); code != http.StatusOK || err == nil {
		t.Errorf("CONNECT %s with SNI %s: %d, handshake %v; want the handshake refused", registry, other, code, err)
	}
	// Nor does a client that sends no SNI (SECURITY.md says so).
	if code, certs, err := connectTLS(t, s.intercept, registry+":443", "", ours); code != http.StatusOK || err == nil || len(certs) != 0 {
		t.Errorf("CONNECT %s without SNI: %d, handshake %v, %d certificates; want the handshake refused", registry, code, err, len(certs))
	}

	// Inside the configured registry's tunnel, a Host header naming another
	// registry changes nothing: the request goes to the configured upstream.
	before := dials.count()
	c, err := net.DialTimeout("tcp", s.intercept, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", registry, registry)
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(&bufConn{Conn: c, r: br}, &tls.Config{ServerName: registry, RootCAs: ours})
	fmt.Fprintf(tc, "GET /v2/ssrf/app/tags/list HTTP/1.1\r\nHost: %s\r\nX-Forwarded-Host: %s\r\n\r\n", other, other)
	resp, err = http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if dials.count() == before {
		t.Fatalf("the decrypted request reached no upstream (%d)", resp.StatusCode)
	}
	if o := dials.others(strings.TrimPrefix(e.URL(), "http://")); len(o) > 0 {
		t.Errorf("a decrypted request with Host %s made the proxy dial %v", other, o)
	}

	// tunnel_others on: another host is tunnelled blind; the client sees
	// that server's own certificate, not one of ours.
	s.stop()
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(target.Close)
	theirs := x509.NewCertPool()
	theirs.AddCert(target.Certificate())
	s2 := secStart(t, secOptions{env: env, transport: dials.transport(), caDir: caDir, yaml: base})
	authority := strings.TrimPrefix(target.URL, "https://")
	code, certs, err = connectTLS(t, s2.intercept, authority, "example.com", theirs)
	if code != http.StatusOK || err != nil || len(certs) == 0 || !certs[0].Equal(target.Certificate()) {
		t.Errorf("CONNECT %s with tunnel_others: %d, %v; want the target's own certificate", authority, code, err)
	}
	if len(certs) > 0 && bytes.Equal(certs[0].RawIssuer, ca.Certificate().RawSubject) {
		t.Errorf("CONNECT %s was answered with a certificate of the local CA", authority)
	}
}

// --- no secret in any output ----------------------------------------------

// Distinctive values that must never appear in an output.
const (
	canarySecretKey    = "SECRETKEY-ecrgate-leak-canary-4f9a1c7e2b"
	canarySessionToken = "SESSIONTOKEN-ecrgate-leak-canary-8d2e6b0f13"
	canaryClientToken  = "CLIENTTOKEN-ecrgate-leak-canary-5c3a9e7d21"
)

// tokenRecorder sits in front of the emulator's API and records every
// authorizationToken that GetAuthorizationToken hands out, so the test
// knows each token ecrgate could hold.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string // base64 "AWS:<password>"
}

func startTokenRecorder(t *testing.T, e *ecrfake.Emulator) (*tokenRecorder, string) {
	t.Helper()
	rec := &tokenRecorder{}
	target, _ := url.Parse(e.URL())
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // SigV4 signs the Host header
		},
		ModifyResponse: func(resp *http.Response) error {
			if !strings.HasSuffix(resp.Request.Header.Get("X-Amz-Target"), ".GetAuthorizationToken") {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			resp.Body = io.NopCloser(bytes.NewReader(b))
			var out struct {
				AuthorizationData []struct{ AuthorizationToken string } `json:"authorizationData"`
			}
			if json.Unmarshal(b, &out) == nil {
				rec.mu.Lock()
				for _, d := range out.AuthorizationData {
					rec.tokens = append(rec.tokens, d.AuthorizationToken)
				}
				rec.mu.Unlock()
			}
			return nil
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// secrets returns every form in which a secret might leak: each token as
// ECR hands it out, its password, the Basic header value, other base64
// alignments and URL escaping, the first and last 24 characters of a
// password (a truncated log), and the AWS secrets.
func (r *tokenRecorder) secrets(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	add := func(what, s string) {
		if s != "" {
			out[s] = what
		}
	}
	for _, tok := range r.tokens {
		raw, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("recorded token is not base64: %v", err)
		}
		pw := strings.TrimPrefix(string(raw), "AWS:")
		add("ECR authorizationToken", tok)
		add("ECR token password", pw)
		add("ECR token password (start)", pw[:24])
		add("ECR token password (end)", pw[len(pw)-24:])
		add("ECR token password, URL-escaped (start)", url.QueryEscape(pw)[:32])
		add("ECR token password, base64", base64.StdEncoding.EncodeToString([]byte(pw))[:64])
		add("ECR token, base64 without padding", base64.RawStdEncoding.EncodeToString(raw)[:64])
		add("ECR token, URL-safe base64", base64.URLEncoding.EncodeToString(raw)[:64])
	}
	for _, s := range extra {
		add("secret "+s[:12], s)
		add("secret "+s[:12]+", base64", base64.StdEncoding.EncodeToString([]byte(s)))
		add("secret "+s[:12]+", base64 Basic", base64.StdEncoding.EncodeToString([]byte("AWS:"+s)))
	}
	return out
}

func (r *tokenRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tokens)
}

// clientRecorder records everything the proxy sends back to the client:
// status lines, headers and bodies.
type clientRecorder struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *clientRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	c.mu.Lock()
	fmt.Fprintf(&c.out, "%s %s -> %s\n", req.Method, req.URL, resp.Status)
	_ = resp.Header.Write(&c.out)
	c.out.Write(b)
	c.out.WriteString("\n")
	c.mu.Unlock()
	return resp, nil
}

func (c *clientRecorder) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// assertNoSecrets fails the test for every secret found in an output.
func assertNoSecrets(t *testing.T, outputs map[string]string, secrets map[string]string) {
	t.Helper()
	for where, text := range outputs {
		for s, what := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s appears in %s", what, where)
			}
		}
	}
}

// cacheOutputs returns the token cache's file names and the content of
// every file in it that is not a token cache entry (the lock files).
func cacheOutputs(t *testing.T, dir string) (names string, others string, entries []string) {
	t.Helper()
	var n, o strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		n.WriteString(p + "\n")
		if d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.HasSuffix(p, ".json") {
			entries = append(entries, string(b))
		} else {
			o.Write(b)
		}
		return nil
	})
	return n.String(), o.String(), entries
}

// A push, a failing push and the auth-error paths at debug level leave no
// ECR token, Authorization value, AWS secret key or session token in the
// log (text and JSON), /metrics, the answers the client gets, the audit
// file, or the token cache's file names; the token is only inside the
// token cache file itself.
func TestSecretsNeverLeak(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { testSecretsNeverLeak(t, format) })
	}
}

func testSecretsNeverLeak(t *testing.T, format string) {
	e := ecrfake.Start(t, ecrfake.Options{AccessKey: "AKIAECRGATELEAKTEST1", SecretKey: canarySecretKey})
	rec, api := startTokenRecorder(t, e)
	env := secEnv(t, e, "AWS_ENDPOINT_URL_ECR="+api, "AWS_SESSION_TOKEN="+canarySessionToken)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	s := secStart(t, secOptions{env: env, logFormat: format, yaml: fmt.Sprintf(
		"log_level: debug\ndefault_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\ndeny: [\"*/tmp*\"]\n"+
			"templates:\n  - prefix: leak\n    image_tag_mutability: IMMUTABLE\n",
		registry, audit, registry, e.URL())})
	client := &clientRecorder{}
	ref := func(r string) name.Reference {
		n, err := name.ParseReference(s.proxy+"/"+r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	push := func(r string) error {
		return remote.Write(ref(r), randomImage(t, 1024, 2), remote.WithTransport(client))
	}
	raw := func(method, path, auth string) {
		req, _ := http.NewRequest(method, "http://"+s.proxy+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Transport: client}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// A push that creates a repository (an audit line), and a pull.
	if err := push("leak/app:1"); err != nil {
		t.Fatalf("push: %v\n%s", err, s.logs)
	}
	if _, err := remote.Image(ref("leak/app:1"), remote.WithTransport(client)); err != nil {
		t.Fatal(err)
	}
	// Failing pushes: an immutable tag overwritten, a denied name.
	if err := push("leak/app:1"); err == nil {
		t.Error("overwriting an immutable tag succeeded")
	}
	if err := push("leak/tmp-x:1"); err == nil {
		t.Error("a denied name was created")
	}
	// The proxy's token is revoked: it refreshes it (a second token).
	e.ExpireTokens()
	if err := push("leak/app:2"); err != nil {
		t.Fatalf("push after the token expired: %v", err)
	}
	// The client sends credentials of its own: a wrong one, and a real one.
	raw(http.MethodGet, "/v2/leak/app/manifests/1", "Basic "+base64.StdEncoding.EncodeToString([]byte("AWS:"+canaryClientToken)))
	raw(http.MethodGet, "/v2/leak/app/tags/list", "Bearer "+canaryClientToken)
	if rec.count() == 0 {
		t.Fatal("no token was recorded: the recorder is not in the token path")
	}
	rec.mu.Lock()
	raw(http.MethodGet, "/v2/leak/app/manifests/1", "Basic "+rec.tokens[len(rec.tokens)-1])
	rec.mu.Unlock()
	_, _, entries := cacheOutputs(t, filepath.Join(s.home, "cache"))
	// ECR refuses the identity a token: every request fails with an error
	// that names the identity (and must name nothing secret).
	e.DenyAction("arn:aws:iam::123456789012:user/ecrfake", "ecr:GetAuthorizationToken")
	e.ExpireTokens()
	if err := push("leak/app:3"); err == nil {
		t.Error("push without a token succeeded")
	}
	// ECR refuses the creation of a repository.
	e.DenyAction("arn:aws:iam::123456789012:user/ecrfake", "ecr:CreateRepository")
	raw(http.MethodPost, "/v2/leak/denied/blobs/uploads/", "")

	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.stop()

	auditText, err := os.ReadFile(audit)
	if err != nil || !strings.Contains(string(auditText), "leak/app") {
		t.Errorf("audit file %q (%v): the scenario created no repository", auditText, err)
	}
	cacheDir := filepath.Join(s.home, "cache")
	names, lockFiles, _ := cacheOutputs(t, cacheDir)
	logs := s.logs.String()
	for _, want := range []string{"refreshing", "no token for upstream"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: a path of the scenario did not run", want)
		}
	}
	secrets := rec.secrets(t, canarySecretKey, canarySessionToken, canaryClientToken)
	assertNoSecrets(t, map[string]string{
		"the proxy's log":              logs,
		"/metrics":                     string(metrics),
		"answers to the client":        client.String(),
		"the audit file":               string(auditText),
		"the token cache's file names": names,
		"the token cache's lock files": lockFiles,
	}, secrets)
	// Where the token must be: in the cache file (this also proves the
	// recorder saw the tokens the proxy used).
	rec.mu.Lock()
	tokens := append([]string(nil), rec.tokens...)
	rec.mu.Unlock()
	found := false
	for _, entry := range entries {
		for _, tok := range tokens {
			raw, _ := base64.StdEncoding.DecodeString(tok)
			found = found || strings.Contains(entry, strings.TrimPrefix(string(raw), "AWS:"))
		}
	}
	if !found {
		t.Errorf("no recorded token is in the token cache (%d entries): the test watches the wrong tokens", len(entries))
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

// --- web pages cannot use the proxy ------------------------------------------

// A web page can send requests to 127.0.0.1 and, with DNS rebinding, read
// the answers under a name of its own. The registry listener refuses
// requests that carry browser headers or name a host that is not this
// machine, before any AWS call; registry clients are unaffected.
func TestBrowsersAndForeignHostsAreRefused(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := secEnv(t, e)
	s := secStart(t, secOptions{env: env, yaml: fmt.Sprintf(
		"default_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		registry, filepath.Join(t.TempDir(), "audit.jsonl"), registry, e.URL())})
	_, port, _ := net.SplitHostPort(s.proxy)
	for _, tc := range []struct {
		name, req string
		refused   bool
	}{
		{"cross-origin POST", "POST /v2/web/app/blobs/uploads/ HTTP/1.1\r\nHost: " + s.proxy + "\r\nOrigin: http://evil.example.com\r\nContent-Length: 0\r\n\r\n", true},
		{"fetch from a page", "POST /v2/web/app/blobs/uploads/ HTTP/1.1\r\nHost: localhost:" + port + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nContent-Length: 0\r\n\r\n", true},
		{"DNS rebinding", "GET /v2/web/app/tags/list HTTP/1.1\r\nHost: rebind.evil.example.com:" + port + "\r\n\r\n", true},
		{"absolute-form to another host", "POST http://evil.example.com/v2/web/app/blobs/uploads/ HTTP/1.1\r\nHost: evil.example.com\r\nContent-Length: 0\r\n\r\n", true},
		{"127.0.0.1", "GET /v2/ HTTP/1.1\r\nHost: " + s.proxy + "\r\n\r\n", false},
		{"localhost", "GET /v2/ HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n", false},
		{"::1", "GET /v2/ HTTP/1.1\r\nHost: [::1]:" + port + "\r\n\r\n", false},
	} {
		resp, body := rawRequest(t, s.proxy, tc.req)
		refused := resp.StatusCode == http.StatusForbidden && strings.Contains(body, "DENIED") && strings.Contains(body, "ecrgate refuses this request")
		if refused != tc.refused {
			t.Errorf("%s: %d %s; refused = %v, want %v", tc.name, resp.StatusCode, body, refused, tc.refused)
		}
	}
	if n := e.Calls("DescribeRepositories") + e.Calls("CreateRepository"); n != 0 {
		t.Errorf("refused requests made %d AWS calls", n)
	}
}
