package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

const (
	// LeafValidity is how long a minted leaf certificate is valid.
	LeafValidity = 24 * time.Hour
	// leafBackdate covers clients whose clock is a little behind ours.
	leafBackdate = 5 * time.Minute
	// renewBefore is how long before its expiry a cached leaf is replaced,
	// so that no handshake gets a certificate about to expire.
	renewBefore = time.Hour
	// maxCached bounds the leaf cache; "all-ecr" interception lets a local
	// client ask for any of many host names.
	maxCached = 1024
)

// ErrRefused is wrapped by the errors of Minter.Leaf and
// Minter.GetCertificate for host names it will not mint a certificate for.
var ErrRefused = errors.New("no certificate for this host")

// Minter mints leaf certificates for ECR registry hosts, signed by a CA,
// on demand. Leaves are cached per host and checked on every hit: one that
// has expired, is about to, or is not yet valid by the clock is replaced.
// Concurrent first requests for one host mint once. It is safe for
// concurrent use.
type Minter struct {
	ca    *CA
	allow func(host string) bool
	now   func() time.Time

	group singleflight.Group
	mu    sync.Mutex
	cache map[string]*tls.Certificate
}

// NewMinter returns a Minter signing with ca. allow decides which hosts may
// get a leaf (the intercept passes its configured registries, or every ECR
// host); nil allows every host. Whatever allow says, hosts that
// ecrhost.Parse rejects, and hosts the CA's name constraints do not permit,
// get none. now is the clock (time.Now when nil).
func NewMinter(ca *CA, allow func(host string) bool, now func() time.Time) *Minter {
	if now == nil {
		now = time.Now
	}
	return &Minter{ca: ca, allow: allow, now: now, cache: map[string]*tls.Certificate{}}
}

// GetCertificate returns the leaf certificate for the server name the client
// asked for, for tls.Config.GetCertificate. A client that sends no server
// name (SNI) gets an error: the Minter only serves named ECR hosts.
func (m *Minter) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello == nil || hello.ServerName == "" {
		return nil, fmt.Errorf("localca: the TLS client sent no server name (SNI); connect by ECR host name, not by address: %w", ErrRefused)
	}
	return m.Leaf(hello.ServerName)
}

// Leaf returns a leaf certificate for host, minting one if the cache holds
// none that is valid for at least another hour. The certificate's chain is
// [leaf, CA] and its Leaf field is set.
func (m *Minter) Leaf(host string) (*tls.Certificate, error) {
	r, err := ecrhost.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("localca: no certificate for %q: %v: %w", host, err, ErrRefused)
	}
	name := r.Host
	if m.allow != nil && !m.allow(name) {
		return nil, fmt.Errorf("localca: no certificate for %s: the intercept does not serve this registry (add it to the config, or set intercept.hosts: all-ecr): %w", name, ErrRefused)
	}
	if !m.ca.Permits(name) {
		return nil, fmt.Errorf("localca: the local CA in %s does not permit %s (it predates this region): run \"ecrgate ca uninstall\", remove the CA files, then \"ecrgate ca init\" and \"ecrgate ca install\": %w", m.ca.Dir(), name, ErrRefused)
	}
	if c := m.cached(name); c != nil {
		return c, nil
	}
	v, err, _ := m.group.Do(name, func() (any, error) {
		// Another caller may have minted while this one waited.
		if c := m.cached(name); c != nil {
			return c, nil
		}
		c, err := m.mint(name)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		if len(m.cache) >= maxCached {
			m.evictLocked()
		}
		m.cache[name] = c
		m.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// cached returns the cached leaf for host if it is fresh by the clock.
func (m *Minter) cached(host string) *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cache[host]
	if c == nil {
		return nil
	}
	if !fresh(c.Leaf, m.now()) {
		delete(m.cache, host)
		return nil
	}
	return c
}

// fresh reports whether leaf is valid at now and stays so for renewBefore.
func fresh(leaf *x509.Certificate, now time.Time) bool {
	return !now.Before(leaf.NotBefore) && now.Add(renewBefore).Before(leaf.NotAfter)
}

// evictLocked makes room in the cache: stale entries go first, else one
// arbitrary entry. m.mu must be held.
func (m *Minter) evictLocked() {
	now := m.now()
	for h, c := range m.cache {
		if !fresh(c.Leaf, now) {
			delete(m.cache, h)
		}
	}
	for h := range m.cache {
		if len(m.cache) < maxCached {
			break
		}
		delete(m.cache, h)
	}
}

// mint issues a leaf for host and verifies it as a client would.
func (m *Minter) mint(host string) (*tls.Certificate, error) {
	now := m.now()
	ca := m.ca.cert
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	if !notAfter.After(now.Add(renewBefore)) {
		return nil, fmt.Errorf("localca: the local CA in %s expires on %s: run \"ecrgate ca uninstall\", remove the CA files, then \"ecrgate ca init\" and \"ecrgate ca install\"",
			m.ca.Dir(), ca.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("localca: generate a key for %s: %w", host, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), m.ca.key)
	if err != nil {
		return nil, fmt.Errorf("localca: sign a certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("localca: parse the certificate for %s: %w", host, err)
	}
	// Check the leaf as Docker will, name constraints included, so a
	// problem shows here with its reason, not as a failed handshake.
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName:     host,
		Roots:       m.ca.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("localca: the certificate minted for %s does not verify against the local CA in %s: %w", host, m.ca.Dir(), err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{der, ca.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}
