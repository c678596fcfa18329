package certreload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/certreload"
)

// pair returns a self-signed certificate with serial and its key, in PEM.
func pair(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ecrgate.test"},
		DNSNames: []string{"ecrgate.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// serve runs a TLS listener with r's configuration and returns a function
// that makes a new connection and reports the serial it was shown.
func serve(t *testing.T, r *certreload.Reloader) func() int64 {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "ecrgate.test"}) //nolint:gosec // the test reads the serial
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := pair(t, 1)
	write(t, certFile, c1)
	write(t, keyFile, k1)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	logs := &logBuf{}
	r, err := certreload.New(certFile, keyFile, certreload.Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	dial := serve(t, r)
	if s := dial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}

	// A new pair: seen once the interval has passed, not before.
	c2, k2 := pair(t, 2)
	write(t, certFile, c2)
	write(t, keyFile, k2)
	if s := dial(); s != 1 {
		t.Errorf("within the interval: serial %d, want still 1", s)
	}
	clk.add(time.Second)
	if s := dial(); s != 2 {
		t.Errorf("after the interval: serial %d, want 2", s)
	}

	// Half-written: the certificate of pair 3 with the key of pair 2 keeps
	// pair 2 in service, with one warning however many handshakes.
	c3, k3 := pair(t, 3)
	write(t, certFile, c3)
	for range 3 {
		clk.add(time.Second)
		if s := dial(); s != 2 {
			t.Errorf("mismatched pair: serial %d, want the previous 2", s)
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("%d warnings about the bad pair, want 1:\n%s", n, logs)
	}
	// The key arrives: pair 3 is served.
	write(t, keyFile, k3)
	clk.add(time.Second)
	if s := dial(); s != 3 {
		t.Errorf("completed pair: serial %d, want 3", s)
	}
	// Garbage keeps pair 3; a missing file too.
	write(t, certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	clk.add(time.Second)
	if s := dial(); s != 3 {
		t.Errorf("garbage certificate: serial %d, want 3", s)
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second)
	if s := dial(); s != 3 {
		t.Errorf("missing certificate: serial %d, want 3", s)
	}
}

// Kubernetes mounts a Secret as tls.crt -> ..data/tls.crt, ..data ->
// ..<timestamp>; an update writes a new timestamped directory and swaps
// ..data atomically.
func TestKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name string, serial int64) {
		t.Helper()
		c, k := pair(t, serial)
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "tls.crt"), c, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "tls.key"), k, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01_01_00_00_00.1", 10)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	r, err := certreload.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), certreload.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	dial := serve(t, r)
	if s := dial(); s != 10 {
		t.Fatalf("serial %d, want 10", s)
	}
	version("..2026_02_01_00_00_00.2", 11)
	clk.add(2 * time.Second)
	if s := dial(); s != 11 {
		t.Errorf("after the ..data swap: serial %d, want 11", s)
	}
}

func TestNewRefusesABadPair(t *testing.T) {
	dir := t.TempDir()
	c1, _ := pair(t, 1)
	_, k2 := pair(t, 2)
	write(t, filepath.Join(dir, "c"), c1)
	write(t, filepath.Join(dir, "k"), k2)
	if _, err := certreload.New(filepath.Join(dir, "c"), filepath.Join(dir, "k"), certreload.Options{}); err == nil {
		t.Error("New accepted a certificate with another's key")
	}
	if _, err := certreload.New(filepath.Join(dir, "none"), filepath.Join(dir, "k"), certreload.Options{}); err == nil {
		t.Error("New accepted a missing certificate")
	}
	r, err := certreload.New(filepath.Join(dir, "c"), filepath.Join(dir, "c"), certreload.Options{})
	if err == nil || r != nil {
		t.Error("New accepted a certificate as its own key")
	}
	_ = net.IPv4len
}
