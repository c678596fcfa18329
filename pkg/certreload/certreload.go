// Package certreload serves a TLS certificate and key from two PEM files
// and picks up new ones when the files change, as cert-manager renews a
// Kubernetes Secret: the volume's files are symbolic links through a
// "..data" link that the kubelet swaps at once, so the paths are followed
// and compared by the file they lead to (device and inode), its size and
// its modification time.
//
// The files are looked at during a handshake, at most once per Interval;
// a new pair is used by the connections that start after it loaded, while
// connections already open keep theirs. A pair that does not load (a
// certificate written before its key, a broken file) leaves the old pair in
// service and is reported once until the files change again.
package certreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often, at most, the files are looked at.
const DefaultInterval = time.Second

// Options configure a Reloader.
type Options struct {
	// Logger gets one info line per new pair and one warning per pair that
	// fails to load (default: discard).
	Logger *slog.Logger
	// Interval bounds how often the files are stat'ed (default DefaultInterval).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Reloader holds the current certificate of a pair of files. It is safe
// for concurrent use.
type Reloader struct {
	certFile, keyFile string
	o                 Options

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  [2]os.FileInfo // what cert was read from
	failed  [2]os.FileInfo // the last files that failed to load, reported once
	checked time.Time
}

// New loads certFile and keyFile (PEM; the certificate file may hold the
// chain after the leaf) and returns their Reloader; an error when they do
// not load as a pair.
func New(certFile, keyFile string, o Options) (*Reloader, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, o: o}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.loaded, r.checked = cert, st, o.Now()
	return r, nil
}

// TLSConfig returns a server configuration that serves the current pair:
// TLS 1.2 or later, with nextProtos for ALPN (nil: the server's default).
func (r *Reloader) TLSConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: nextProtos}
}

// GetCertificate is tls.Config.GetCertificate: the current pair, reloaded
// first if the files changed since it was read (looked at no more than once
// per Interval).
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.o.Now(); now.Sub(r.checked) >= r.o.Interval || now.Before(r.checked) {
		r.checked = now
		r.reload()
	}
	return r.cert, nil
}

// Certificate returns the pair in service, without looking at the files.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// reload loads the files if they are not the ones in service. r.mu is held.
func (r *Reloader) reload() {
	st, err := r.stat()
	if err != nil {
		if !same(st, r.failed) {
			r.failed = st
			r.o.Logger.Warn("cannot read the TLS certificate files; still serving the previous certificate", "err", err)
		}
		return
	}
	if same(st, r.loaded) || same(st, r.failed) {
		return
	}
	cert, err := r.load()
	if err != nil {
		r.failed = st
		r.o.Logger.Warn("the TLS certificate files changed but do not load; still serving the previous certificate until they change again",
			"cert_file", r.certFile, "key_file", r.keyFile, "err", err)
		return
	}
	r.cert, r.loaded, r.failed = cert, st, [2]os.FileInfo{}
	r.o.Logger.Info("loaded a new TLS certificate", append([]any{"cert_file", r.certFile}, describe(cert)...)...)
}

// stat looks at both files, following symbolic links. A file that cannot
// be stat'ed leaves its slot nil.
func (r *Reloader) stat() ([2]os.FileInfo, error) {
	var st [2]os.FileInfo
	for i, p := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, fmt.Errorf("tls: %w", err)
		}
		st[i] = fi
	}
	return st, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: %s: %w", r.certFile, err)
		}
	}
	return &cert, nil
}

// same reports whether a and b describe the same two files, unchanged: the
// same file (device and inode), size and modification time each.
func same(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil {
			if a[i] != b[i] {
				return false
			}
			continue
		}
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

// describe names a certificate for logs: its subject, serial and validity.
func describe(c *tls.Certificate) []any {
	if c.Leaf == nil {
		return nil
	}
	return []any{"subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.String(), "not_after", c.Leaf.NotAfter}
}
