package intercept_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/intercept"
)

const ecrHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// testCA is a throwaway CA with one leaf for ecrHost.
type testCA struct {
	pool *x509.CertPool
	leaf tls.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ecrgate test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ecrHost},
		DNSNames:     []string{ecrHost},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testCA{pool: pool, leaf: tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}}
}

// serverConfig mints (here: hands out) a leaf for ecrHost only, as
// pkg/localca will.
func (ca *testCA) serverConfig() *tls.Config {
	return &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName != ecrHost {
			return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
		}
		return &ca.leaf, nil
	}}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type proxyUnderTest struct {
	addr   string
	logs   *syncBuffer
	dials  *dialRecorder
	cancel context.CancelFunc
	done   chan error
}

// dialRecorder records tunnel and forward dials and redirects named
// addresses to loopback servers.
type dialRecorder struct {
	mu       sync.Mutex
	addrs    []string
	redirect map[string]string
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	to, ok := d.redirect[addr]
	d.mu.Unlock()
	if !ok {
		to = addr
	}
	host, _, err := net.SplitHostPort(to)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dial to %s refused: loopback only", to)
	}
	return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, to)
}

func (d *dialRecorder) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// startProxy runs Serve on a loopback listener until the test ends.
func startProxy(t *testing.T, o intercept.Options, redirect map[string]string) *proxyUnderTest {
	t.Helper()
	p := &proxyUnderTest{logs: &syncBuffer{}, dials: &dialRecorder{redirect: redirect}, done: make(chan error, 1)}
	o.Dial = p.dials.dial
	o.Logger = slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := intercept.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	var ctx context.Context
	ctx, p.cancel = context.WithCancel(context.Background())
	go func() { p.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		p.cancel()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			p.done <- err
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return p
}

func (p *proxyUnderTest) client(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr}),
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
}

// eagerConn sends CONNECT and the first bytes of the tunnel in one write,
// as clients that do not wait for the 200 do, so they arrive buffered with
// the CONNECT head; its first Read consumes the proxy's answer.
type eagerConn struct {
	net.Conn
	head     []byte
	br       *bufio.Reader
	answered bool
}

func eagerConnect(t *testing.T, proxyAddr, authority string) *eagerConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &eagerConn{Conn: c, br: bufio.NewReader(c),
		head: []byte("CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n")}
}

func (c *eagerConn) Write(p []byte) (int, error) {
	if c.head != nil {
		b := append(c.head, p...)
		c.head = nil
		if _, err := c.Conn.Write(b); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *eagerConn) Read(p []byte) (int, error) {
	if !c.answered {
		c.answered = true
		resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return 0, fmt.Errorf("read CONNECT answer: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("CONNECT answered %s", resp.Status)
		}
	}
	return c.br.Read(p)
}

func (c *eagerConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

type seen struct {
	host, urlHost, scheme, path, query, remote, body string
	tls                                              bool
}

func TestInterceptServesHandlerWithKeepAlive(t *testing.T) {
	ca := newTestCA(t)
	var connects atomic.Int32
	var mu sync.Mutex
	var got []seen
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		got = append(got, seen{host: r.Host, urlHost: r.URL.Host, scheme: r.URL.Scheme, path: r.URL.Path,
			query: r.URL.RawQuery, remote: r.RemoteAddr, body: string(body), tls: r.TLS != nil})
		mu.Unlock()
		w.Header().Set("Location", "https://"+r.Host+"/v2/team/app/blobs/uploads/1")
		_, _ = io.WriteString(w, "handled "+r.URL.Path)
	})
	p := startProxy(t, intercept.Options{
		Intercept: func(host string) bool {
			if host == ecrHost {
				connects.Add(1)
				return true
			}
			return false
		},
		TLSConfig: ca.serverConfig(),
		Handler:   handler,
	}, nil)
	c := p.client(ca.pool)

	base := "https://" + ecrHost
	reqs := []struct {
		method, path, body string
	}{
		{http.MethodGet, "/v2/", ""},
		{http.MethodHead, "/v2/team/app/blobs/sha256:abc", ""},
		{http.MethodPost, "/v2/team/app/blobs/uploads/?mount=sha256:abc&from=other", ""},
		{http.MethodPut, "/v2/team/app/manifests/1.0", `{"schemaVersion":2}`},
		{http.MethodGet, "/v2/team/app/tags/list?n=10", ""},
	}
	for _, rq := range reqs {
		req, err := http.NewRequest(rq.method, base+rq.path, strings.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Basic QVdTOnNlY3JldC10b2tlbg==")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rq.method, rq.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s %s", rq.method, rq.path, resp.Status, b)
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, ca.leaf.Certificate[0]) {
			t.Fatalf("%s %s: not served with the local CA's leaf", rq.method, rq.path)
		}
		if rq.method != http.MethodHead && string(b) != "handled "+strings.SplitN(rq.path, "?", 2)[0] {
			t.Errorf("%s %s: body %q", rq.method, rq.path, b)
		}
	}

	if n := connects.Load(); n != 1 {
		t.Errorf("%d CONNECTs for %d requests, want 1 (keep-alive through one tunnel)", n, len(reqs))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(reqs) {
		t.Fatalf("handler saw %d requests, want %d", len(got), len(reqs))
	}
	for i, g := range got {
		u, _ := url.Parse(reqs[i].path)
		want := seen{host: ecrHost, urlHost: ecrHost, scheme: "https", path: u.Path, query: u.RawQuery,
			remote: got[0].remote, body: reqs[i].body, tls: true}
		if g != want {
			t.Errorf("request %d: handler saw %+v, want %+v", i, g, want)
		}
	}

	c.CloseIdleConnections()
	waitFor(t, "the intercepted connection's log line", func() bool {
		return strings.Contains(p.logs.String(), "mode=intercepted")
	})
	logs := p.logs.String()
	if !strings.Contains(logs, "host="+ecrHost+":443") {
		t.Errorf("log line lacks the CONNECT host:\n%s", logs)
	}
	if strings.Contains(logs, "QVdT") || strings.Contains(logs, "Authorization") || strings.Contains(logs, "schemaVersion") {
		t.Errorf("logs carry a credential or a body:\n%s", logs)
	}
	if d := p.dials.dialled(); len(d) != 0 {
		t.Errorf("intercepted traffic dialled %v", d)
	}
}

func TestInterceptTLSHandshake(t *testing.T) {
	ca := newTestCA(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Host+" "+r.URL.Path)
	})
	p := startProxy(t, intercept.Options{
		Intercept: func(host string) bool { return host == ecrHost },
		TLSConfig: ca.serverConfig(),
		Handler:   handler,
	}, nil)
	verifyECR := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: ecrHost, Roots: ca.pool})
		return err
	}
	tests := []struct {
		name      string
		authority string
		cfg       *tls.Config
		wantErr   bool
	}{
		{"ClientHello sent with the CONNECT", ecrHost + ":443", &tls.Config{ServerName: ecrHost, RootCAs: ca.pool}, false},
		{"upper-case CONNECT host", strings.ToUpper(ecrHost) + ":443", &tls.Config{ServerName: ecrHost, RootCAs: ca.pool}, false},
		// No SNI: no certificate at all, as SECURITY.md says.
		{"no SNI", ecrHost + ":443", &tls.Config{InsecureSkipVerify: true, VerifyConnection: verifyECR}, true},
		{"SNI is not the CONNECT host", ecrHost + ":443", &tls.Config{ServerName: "999999999999.dkr.ecr.us-east-1.amazonaws.com", RootCAs: ca.pool}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := tls.Client(eagerConnect(t, p.addr, tc.authority), tc.cfg)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			err := conn.Handshake()
			if tc.wantErr {
				if err == nil {
					t.Fatal("handshake succeeded, want failure")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			// The handler sees the CONNECT host, not the Host header.
			if resp.StatusCode != http.StatusOK || string(b) != ecrHost+" /v2/" {
				t.Errorf("got %s %q, want 200 %q", resp.Status, b, ecrHost+" /v2/")
			}
		})
	}
}

func TestTunnelPassesTLSThroughUndecrypted(t *testing.T) {
	ca := newTestCA(t)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "origin "+r.URL.Path)
	}))
	defer ts.Close()
	tsAddr := ts.Listener.Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	p := startProxy(t, intercept.Options{
		Intercept:    func(host string) bool { return host == ecrHost },
		TLSConfig:    ca.serverConfig(),
		Handler:      http.NotFoundHandler(),
		TunnelOthers: true,
	}, map[string]string{"example.com:443": tsAddr, ecrHost + ":8443": tsAddr})

	t.Run("http client", func(t *testing.T) {
		c := p.client(roots)
		defer c.CloseIdleConnections()
		resp, err := c.Get(ts.URL + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "origin /hello" {
			t.Errorf("body %q", b)
		}
		if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, ts.Certificate().Raw) {
			t.Error("the handshake did not present the origin's certificate")
		}
	})

	tests := []struct {
		name, authority, serverName string
	}{
		{"loopback origin", tsAddr, "127.0.0.1"},
		{"not an intercepted host", "example.com:443", "example.com"},
		{"intercepted host on another port", ecrHost + ":8443", "example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := tls.Client(eagerConnect(t, p.addr, tc.authority), &tls.Config{ServerName: tc.serverName, RootCAs: roots})
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if err := conn.Handshake(); err != nil {
				t.Fatalf("handshake through the tunnel: %v", err)
			}
			if !bytes.Equal(conn.ConnectionState().PeerCertificates[0].Raw, ts.Certificate().Raw) {
				t.Fatal("the handshake did not present the origin's certificate")
			}
			if _, err := io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "origin /x" {
				t.Errorf("body %q", b)
			}
		})
	}
	want := []string{tsAddr, tsAddr, "example.com:443", ecrHost + ":8443"}
	if got := p.dials.dialled(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dialled %v, want %v", got, want)
	}
}

// echoServer echoes every connection and reports what it received.
func echoServer(t *testing.T) (addr string, received <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ch := make(chan []byte, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var got bytes.Buffer
				_, _ = io.Copy(c, io.TeeReader(c, &got))
				_ = c.(*net.TCPConn).CloseWrite()
				ch <- got.Bytes()
			}()
		}
	}()
	return ln.Addr().String(), ch
}

func TestTunnelCopiesBytesExactly(t *testing.T) {
	addr, received := echoServer(t)
	p := startProxy(t, intercept.Options{TunnelOthers: true}, nil)

	payload := make([]byte, 8<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	conn := eagerConnect(t, p.addr, addr)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		// The first write travels with the CONNECT head.
		if _, err := conn.Write(payload[:1000]); err != nil {
			werr <- err
			return
		}
		if _, err := conn.Write(payload[1000:]); err != nil {
			werr <- err
			return
		}
		werr <- conn.CloseWrite() // half-close: the echo server sees EOF and finishes
	}()
	back, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(back, payload) {
		t.Errorf("client got %d bytes back (sha256 %x), sent %d (sha256 %x)", len(back), sha256.Sum256(back), len(payload), sha256.Sum256(payload))
	}
	select {
	case got := <-received:
		if !bytes.Equal(got, payload) {
			t.Errorf("target received %d bytes (sha256 %x), client sent %d (sha256 %x)", len(got), sha256.Sum256(got), len(payload), sha256.Sum256(payload))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("echo server never finished")
	}
	line := fmt.Sprintf("mode=tunnelled client=%s bytes_from_client=%d bytes_to_client=%d", conn.LocalAddr(), len(payload), len(payload))
	waitFor(t, "the tunnel's log line", func() bool { return strings.Contains(p.logs.String(), line) })
}

func TestTunnelIdleTimeout(t *testing.T) {
	addr, _ := echoServer(t)
	const idle = 300 * time.Millisecond
	p := startProxy(t, intercept.Options{TunnelOthers: true, IdleTimeout: idle}, nil)
	conn := eagerConnect(t, p.addr, addr)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4)
	// Traffic for well over the idle timeout keeps the tunnel open.
	for i := range 8 {
		if _, err := io.WriteString(conn, "ping"); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo %d: %q %v", i, buf, err)
		}
		time.Sleep(idle / 3)
	}
	start := time.Now()
	if n, err := conn.Read(buf); err == nil {
		t.Fatalf("read %d bytes from an idle tunnel, want it closed", n)
	} else if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("idle tunnel not closed: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	ca := newTestCA(t)
	var handled atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1) })
	closed := intercept.Options{
		Intercept: func(host string) bool { return host == ecrHost },
		TLSConfig: ca.serverConfig(),
		Handler:   handler,
	}
	strict := startProxy(t, closed, nil)
	open := closed
	open.TunnelOthers = true
	lenient := startProxy(t, open, nil)

	tests := []struct {
		name     string
		proxy    *proxyUnderTest
		request  string // request line; %s is the proxy's own address
		wantCode int
		wantBody string
	}{
		{"origin-form request", lenient, "GET /v2/ HTTP/1.1", http.StatusBadRequest, "this is an HTTP proxy; point HTTPS_PROXY at it"},
		{"tunnel_others off", strict, "CONNECT example.com:443 HTTP/1.1", http.StatusForbidden, "ecrgate only intercepts ECR registries, and tunnel_others is off"},
		{"tunnel_others off, loopback port", strict, "CONNECT 127.0.0.1:9 HTTP/1.1", http.StatusForbidden, "tunnel_others is off"},
		{"tunnel_others off, ECR host on another port", strict, "CONNECT " + ecrHost + ":80 HTTP/1.1", http.StatusForbidden, "tunnel_others is off"},
		{"CONNECT without a port", lenient, "CONNECT example.com HTTP/1.1", http.StatusBadRequest, "CONNECT needs host:port"},
		{"plain http to an intercepted host", lenient, "GET http://" + ecrHost + "/v2/ HTTP/1.1", http.StatusForbidden, "only over https"},
		{"plain http with tunnel_others off", strict, "GET http://127.0.0.1:9/ HTTP/1.1", http.StatusForbidden, "tunnel_others is off: not forwarding"},
		{"absolute https without CONNECT", lenient, "GET https://example.com/ HTTP/1.1", http.StatusBadRequest, "use CONNECT"},
		{"request for the proxy itself", lenient, "GET http://%s/loop HTTP/1.1", http.StatusLoopDetected, "to itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.request
			if strings.Contains(line, "%s") {
				line = fmt.Sprintf(line, tc.proxy.addr)
			}
			c, err := net.DialTimeout("tcp", tc.proxy.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, line+"\r\nHost: example.com\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			method, _, _ := strings.Cut(line, " ")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(b), tc.wantBody) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, b, tc.wantCode, tc.wantBody)
			}
		})
	}
	for _, p := range []*proxyUnderTest{strict, lenient} {
		if d := p.dials.dialled(); len(d) != 0 {
			t.Errorf("refused requests dialled %v", d)
		}
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("Handler served %d refused requests", n)
	}
}

func TestForwardHTTP(t *testing.T) {
	type got struct {
		path, query, body string
		header            http.Header
	}
	seenc := make(chan got, 2)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		seenc <- got{r.URL.Path, r.URL.RawQuery, string(b), r.Header.Clone()}
		w.Header().Set("X-Origin", "yes")
		_, _ = io.WriteString(w, "origin says hi")
	}))
	defer origin.Close()
	host := origin.Listener.Addr().String()
	p := startProxy(t, intercept.Options{TunnelOthers: true}, nil)

	t.Run("hop-by-hop headers stripped", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET http://" + host + "/v2/x?y=1 HTTP/1.1\r\nHost: " + host + "\r\n" +
			"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
			"Connection: X-Hop\r\nX-Hop: 1\r\nX-Forwarded-For: 203.0.113.7\r\nX-Keep: 1\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "origin says hi" || resp.Header.Get("X-Origin") != "yes" {
			t.Fatalf("got %s %q", resp.Status, b)
		}
		g := <-seenc
		if g.path != "/v2/x" || g.query != "y=1" {
			t.Errorf("origin saw %s?%s", g.path, g.query)
		}
		for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "X-Hop", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := g.header.Get(h); v != "" {
				t.Errorf("origin got %s: %q", h, v)
			}
		}
		if g.header.Get("X-Keep") != "1" {
			t.Error("an end-to-end header was dropped")
		}
	})

	t.Run("http client with a body", func(t *testing.T) {
		c := p.client(nil)
		defer c.CloseIdleConnections()
		resp, err := c.Post(origin.URL+"/upload", "application/octet-stream", strings.NewReader("layer bytes"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "origin says hi" {
			t.Errorf("body %q", b)
		}
		if g := <-seenc; g.path != "/upload" || g.body != "layer bytes" {
			t.Errorf("origin saw %s with body %q", g.path, g.body)
		}
	})
}

func TestServeShutsDownOnCancel(t *testing.T) {
	ca := newTestCA(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	echoAddr, _ := echoServer(t)
	p := startProxy(t, intercept.Options{
		Intercept:    func(host string) bool { return host == ecrHost },
		TLSConfig:    ca.serverConfig(),
		Handler:      handler,
		TunnelOthers: true,
	}, nil)

	// An open tunnel…
	tun := eagerConnect(t, p.addr, echoAddr)
	_ = tun.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(tun, "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tun, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	// …and a decrypted request in flight.
	c := p.client(ca.pool)
	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := c.Get("https://" + ecrHost + "/v2/team/app/manifests/1")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{string(b), err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the handler")
	}

	p.cancel()
	// The tunnel is closed at once.
	if _, err := tun.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tunnel still open after cancel: %v", err)
	}
	// New connections are refused.
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	// The decrypted request drains.
	select {
	case err := <-p.done:
		t.Fatalf("Serve returned (%v) before the in-flight request finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case r := <-resc:
		if r.err != nil || r.body != "finished" {
			t.Errorf("in-flight request: %q, %v; want it to finish", r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		p.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestNewValidates(t *testing.T) {
	ca := newTestCA(t)
	yes := func(string) bool { return true }
	tests := []struct {
		name    string
		o       intercept.Options
		wantErr string
	}{
		{"tunnel only", intercept.Options{TunnelOthers: true}, ""},
		{"intercept without handler", intercept.Options{Intercept: yes, TLSConfig: ca.serverConfig()}, "Handler is required"},
		{"intercept without TLS", intercept.Options{Intercept: yes, Handler: http.NotFoundHandler()}, "TLSConfig"},
		{"intercept with empty TLS", intercept.Options{Intercept: yes, Handler: http.NotFoundHandler(), TLSConfig: &tls.Config{}}, "TLSConfig"},
		{"intercept", intercept.Options{Intercept: yes, Handler: http.NotFoundHandler(), TLSConfig: ca.serverConfig()}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := intercept.New(tc.o)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("New: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
