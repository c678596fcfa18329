package server_test

// A shared team proxy (issue #15): allow_remote with TLS. Every client,
// loopback ones included, brings its own ECR token; ecrgate adds none, and
// creates a repository only for a caller whose token ECR accepts for it.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
	"github.com/ecrgate/ecrgate/pkg/server"
)

const (
	otherAccount  = "210987654321"
	otherRegistry = otherAccount + ".dkr.ecr.us-east-1.amazonaws.com"
	otherKey      = "AKIAECRFAKEOTHER0001"
	otherSecret   = "ecrfake/other/secret/not/a/real/one/00"
)

// writeServerPair writes a certificate for 127.0.0.1 with serial, and its
// key, to tls.crt and tls.key in dir, each replaced by a rename.
func writeServerPair(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ecrgate.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"ecrgate.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, f+".new"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, f+".new"), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

type sharedFixture struct {
	e      *ecrfake.Emulator
	s      *secServer
	audit  string
	tlsDir string
	roots  *x509.CertPool
	good   string // the default user's token for registry, as Authorization
	other  string // another account's user's token for its own registry
}

func sharedStart(t *testing.T) *sharedFixture {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", otherAccount},
		Users: []ecrfake.User{{Name: "other", Account: otherAccount, AccessKey: otherKey, SecretKey: otherSecret}}})
	env := secEnv(t, e)
	f := &sharedFixture{e: e, tlsDir: t.TempDir(), roots: x509.NewCertPool()}
	f.roots.AddCert(writeServerPair(t, f.tlsDir, 1))
	f.audit = filepath.Join(t.TempDir(), "audit.jsonl")

	basic := func(env []string, reg string) string {
		t.Helper()
		tok, err := ecrauth.New(ecrauth.Options{Env: env, NoCache: true}).Token(context.Background(), reg)
		if err != nil {
			t.Fatal(err)
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(tok.Username+":"+tok.Password))
	}
	f.good = basic(env, registry)
	// The SDK reads the process environment (secEnv set it): the other
	// account's user, for a moment.
	otherEnv := append(append([]string(nil), env...), "AWS_ACCESS_KEY_ID="+otherKey, "AWS_SECRET_ACCESS_KEY="+otherSecret)
	t.Setenv("AWS_ACCESS_KEY_ID", otherKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", otherSecret)
	f.other = basic(otherEnv, otherRegistry)
	t.Setenv("AWS_ACCESS_KEY_ID", e.AccessKey())
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.SecretKey())

	f.s = secStart(t, secOptions{env: env, yaml: fmt.Sprintf(
		"allow_remote: true\ntls: {cert_file: %s, key_file: %s}\ndefault_registry: %s\naudit_log: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		filepath.Join(f.tlsDir, "tls.crt"), filepath.Join(f.tlsDir, "tls.key"), registry, f.audit, registry, e.URL())})
	return f
}

// client is an HTTPS client of the proxy that trusts the test's
// certificates and reuses its connections.
func (f *sharedFixture) client(t *testing.T) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *sharedFixture) do(t *testing.T, hc *http.Client, method, path, auth string, body io.Reader) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+f.s.proxy+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestSharedProxyNeedsTheCallersToken(t *testing.T) {
	f := sharedStart(t)
	hc := f.client(t)
	tokensBefore := f.e.Calls("GetAuthorizationToken")
	refused := func(what, repo string, resp *http.Response, body string, status int, code string) {
		t.Helper()
		if resp.StatusCode != status || !strings.Contains(body, code) {
			t.Errorf("%s: %d %s; want %d %s", what, resp.StatusCode, body, status, code)
		}
		if status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != ecrChallenge {
			t.Errorf("%s: WWW-Authenticate %q; want ECR's challenge", what, resp.Header.Get("WWW-Authenticate"))
		}
		if _, ok := f.e.Repository("", repo); ok {
			t.Errorf("%s: %s was created", what, repo)
		}
	}

	// The version check is ECR's, not ecrgate's: a client without a token
	// meets the challenge (and docker then asks its credential helper).
	resp, body := f.do(t, hc, http.MethodGet, "/v2/", "", nil)
	refused("GET /v2/ without a token", "", resp, body, http.StatusUnauthorized, "")
	if resp.TLS == nil {
		t.Fatal("the registry listener answered without TLS")
	}
	// A loopback client without a token: 401, nothing created, nothing read.
	resp, body = f.do(t, hc, http.MethodPost, "/v2/team/none/blobs/uploads/", "", nil)
	refused("no token", "team/none", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	resp, body = f.do(t, hc, http.MethodGet, "/v2/team/none/tags/list", "", nil)
	refused("a read without a token", "team/none", resp, body, http.StatusUnauthorized, "")
	// A bogus token: 401, nothing created.
	bogus := "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:bogus"))
	resp, body = f.do(t, hc, http.MethodPost, "/v2/team/bogus/blobs/uploads/", bogus, nil)
	refused("bogus token", "team/bogus", resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
	// A good token of another account (for its own registry): ECR lets
	// it open /v2/ of this registry, not push here: refused, nothing created.
	if resp, _ := f.do(t, hc, http.MethodGet, "/v2/", f.other, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other account's token does not open /v2/ (%d): the test proves nothing", resp.StatusCode)
	}
	resp, body = f.do(t, hc, http.MethodPost, "/v2/team/foreign/blobs/uploads/", f.other, nil)
	refused("another account's token", "team/foreign", resp, body, http.StatusForbidden, "DENIED")
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	req, err := http.NewRequest(http.MethodPut, "https://"+f.s.proxy+"/v2/team/foreign/manifests/v1", bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", f.other)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body = string(b)
	refused("another account's token, manifest", "team/foreign", resp, body, http.StatusForbidden, "DENIED")
	if n := f.e.Calls("CreateRepository"); n != 0 {
		t.Fatalf("CreateRepository called %d times for refused clients", n)
	}

	// The caller's own good token: the push goes through and the
	// repository is created.
	img := randomImage(t, 1024, 2)
	ref, err := name.ParseReference(f.s.proxy + "/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimPrefix(mustDecode(t, strings.TrimPrefix(f.good, "Basic ")), "AWS:")
	if err := remote.Write(ref, img, remote.WithTransport(hc.Transport), remote.WithAuth(&authn.Basic{Username: "AWS", Password: password})); err != nil {
		t.Fatalf("push with the caller's token: %v", err)
	}
	if _, ok := f.e.Repository("", "team/app"); !ok {
		t.Fatal("team/app was not created")
	}
	// Without credentials, the pushed image cannot be read back.
	resp, _ = f.do(t, hc, http.MethodGet, "/v2/team/app/manifests/1", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a pull without a token: %d; want 401", resp.StatusCode)
	}
	// ecrgate never fetched a token of its own: the test's two are all.
	if n := f.e.Calls("GetAuthorizationToken") - tokensBefore; n != 0 {
		t.Errorf("ecrgate called GetAuthorizationToken %d times; a shared proxy uses the caller's token only", n)
	}
	// ecrgate's own identity did create it, once.
	if n := f.e.Calls("CreateRepository"); n != 1 {
		t.Errorf("CreateRepository called %d times, want 1", n)
	}

	// The audit line names the client and the token's fingerprint, never the token.
	data, err := os.ReadFile(f.audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"repository":"team/app"`) ||
		!strings.Contains(lines[0], `"client":"127.0.0.1:`) || !strings.Contains(lines[0], `"token":"`+repocreate.TokenFingerprint(f.good)+`"`) {
		t.Errorf("audit:\n%s\nwant one line for team/app with client 127.0.0.1:<port> and token %s", data, repocreate.TokenFingerprint(f.good))
	}
	logs := f.s.logs.String()
	for _, secret := range []string{f.good, strings.TrimPrefix(f.good, "Basic "), password, f.other, strings.TrimPrefix(f.other, "Basic ")} {
		if strings.Contains(string(data), secret) || strings.Contains(logs, secret) {
			t.Error("a token reached the audit file or the logs")
		}
	}
	if !strings.Contains(logs, "created repository") || !strings.Contains(logs, "token="+repocreate.TokenFingerprint(f.good)) {
		t.Errorf("the creation log line lacks the token fingerprint:\n%s", logs)
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Certificate rotation: the files are replaced under a running server; a
// blob upload in flight on a connection made before finishes, and a new
// connection sees the new certificate.
func TestSharedProxyCertificateRotation(t *testing.T) {
	f := sharedStart(t)
	hc := f.client(t)
	resp, body := f.do(t, hc, http.MethodPost, "/v2/team/rotate/blobs/uploads/", f.good, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload start: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "https://"+f.s.proxy+"/v2/team/rotate/blobs/uploads/") {
		t.Fatalf("Location %q does not point back at the proxy over https", loc)
	}

	// A slow PATCH: half the blob, then the rotation, then the rest.
	blob := bytes.Repeat([]byte("ecrgate"), 64<<10)
	pr, pw := io.Pipe()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPatch, loc, pr)
		if err != nil {
			done <- result{err: err}
			return
		}
		req.Header.Set("Authorization", f.good)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- result{resp, err}
	}()
	if _, err := pw.Write(blob[:len(blob)/2]); err != nil {
		t.Fatal(err)
	}

	newCert := writeServerPair(t, f.tlsDir, 2)
	f.roots.AddCert(newCert)
	time.Sleep(1100 * time.Millisecond) // certreload looks at the files at most once a second
	conn, err := tls.Dial("tcp", f.s.proxy, &tls.Config{RootCAs: f.roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("a new connection after the rotation: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 2 {
		t.Errorf("a new connection sees serial %d, want the new certificate's 2", got)
	}
	conn.Close()

	if _, err := pw.Write(blob[len(blob)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("the upload in flight failed: %v", r.err)
	}
	if r.resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH in flight: %d", r.resp.StatusCode)
	}
	if got := r.resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
		t.Errorf("the upload in flight ran on a connection with serial %d, want the old 1", got)
	}
	sum := fmt.Sprintf("sha256:%x", sha256Sum(blob))
	resp, body = f.do(t, hc, http.MethodPut, strings.TrimPrefix(r.resp.Header.Get("Location"), "https://"+f.s.proxy)+"&digest="+sum, f.good, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload completion: %d %s", resp.StatusCode, body)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// With tls:, the intercept listener's CONNECT front speaks TLS too:
// clients use an https:// proxy URL, and a plain-HTTP CONNECT gets nothing.
func TestSharedProxyInterceptFrontIsTLS(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	env := secEnv(t, e)
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	roots := x509.NewCertPool()
	roots.AddCert(writeServerPair(t, tlsDir, 7))
	roots.AddCert(ca.Certificate())
	tok, err := ecrauth.New(ecrauth.Options{Env: env, NoCache: true}).Token(context.Background(), registry)
	if err != nil {
		t.Fatal(err)
	}
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte(tok.Username+":"+tok.Password))
	s := secStart(t, secOptions{env: env, caDir: caDir, yaml: fmt.Sprintf(
		"allow_remote: true\ntls: {cert_file: %s, key_file: %s}\ndefault_registry: %s\nregistries:\n  - host: %s\n    endpoint: %s\n",
		filepath.Join(tlsDir, "tls.crt"), filepath.Join(tlsDir, "tls.key"), registry, registry, e.URL())})
	addr := s.intercept

	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "https", Host: addr}),
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	post := func(auth string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "https://"+registry+"/v2/team/icpt/blobs/uploads/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("through the https proxy: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != ecrChallenge {
		t.Errorf("without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := post(good); resp.StatusCode != http.StatusAccepted {
		t.Errorf("with the caller's token: %d", resp.StatusCode)
	}
	if _, ok := e.Repository("", "team/icpt"); !ok {
		t.Error("team/icpt was not created")
	}

	// Plain HTTP to the CONNECT front: no proxy answer.
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT "+registry+":443 HTTP/1.1\r\nHost: "+registry+":443\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.LimitReader(c, 1024))
	if strings.Contains(string(b), "200 Connection established") {
		t.Errorf("a plain-HTTP CONNECT was answered: %q", b)
	}
}

// With allow_remote and tls, the listeners open off loopback; clients name
// the proxy (and kubelet the admin listener) by names that are not this
// machine's, and browsers are still refused.
func TestSharedProxyListensOffLoopback(t *testing.T) {
	tlsDir := t.TempDir()
	roots := x509.NewCertPool()
	roots.AddCert(writeServerPair(t, tlsDir, 3))
	cfg := config.Default([]string{"HOME=" + t.TempDir()})
	cfg.AllowRemote = true
	cfg.TLS = config.TLS{CertFile: filepath.Join(tlsDir, "tls.crt"), KeyFile: filepath.Join(tlsDir, "tls.key")}
	cfg.Listen, cfg.AdminListen = "0.0.0.0:0", "0.0.0.0:0"
	cfg.DefaultRegistry = registry
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan [2]net.Addr, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: []string{"HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"},
			CADir: filepath.Join(t.TempDir(), "no-ca"), ShutdownTimeout: 5 * time.Second,
			Ready: func(reg, admin net.Addr) { ready <- [2]net.Addr{reg, admin} }})
	}()
	var addrs [2]net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("server.Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	}()
	for _, a := range addrs {
		if ta := a.(*net.TCPAddr); !ta.IP.IsUnspecified() {
			t.Errorf("listening on %v, want every interface", a)
		}
	}
	port := func(a net.Addr) string { return fmt.Sprint(a.(*net.TCPAddr).Port) }
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "ecrgate.test", MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	get := func(url, host string, browser bool) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if browser {
			req.Header.Set("Sec-Fetch-Mode", "cors")
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("http://127.0.0.1:"+port(addrs[1])+"/healthz", "10.1.2.3:"+port(addrs[1]), false); c != http.StatusOK {
		t.Errorf("a probe addressing the pod IP: %d", c)
	}
	if c := get("http://127.0.0.1:"+port(addrs[1])+"/metrics", "10.1.2.3", true); c != http.StatusForbidden {
		t.Errorf("a browser on the admin listener: %d, want 403", c)
	}
	if c := get("https://127.0.0.1:"+port(addrs[0])+"/v2/team/x/tags/list", "ecrgate.example.internal:5000", true); c != http.StatusForbidden {
		t.Errorf("a browser on the registry listener: %d, want 403", c)
	}
}
