// Package localca is ecrgate's local certificate authority for intercept
// mode: an ECDSA P-256 CA kept in a private directory, whose certificate
// carries critical X.509 name constraints that permit only the Amazon ECR
// registry domains, and a Minter that issues short-lived leaf certificates
// for ECR hosts on demand.
//
// The name constraints are what make a CA on a laptop acceptable: even with
// the CA key stolen, no verifier that honours RFC 5280 (Go's crypto/x509,
// which dockerd uses, browsers, OpenSSL) accepts a certificate it signs for any
// name outside the ECR registry domains, nor for any IP address.
//
// Install and Uninstall put the CA certificate where dockerd looks for
// per-registry CAs (/etc/docker/certs.d/<host>/ca.crt) and take those files
// away again: only files that still hold this CA's certificate, never
// through a symbolic link.
package localca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/private"
)

// File names inside the CA directory.
const (
	CertFile     = "ca.crt"         // the CA certificate, PEM, 0644
	KeyFile      = "ca.key"         // the CA private key, PKCS#8 PEM, 0600
	ManifestFile = "installed.json" // what Install wrote, for Uninstall
)

const (
	caValidity = 10 * 365 * 24 * time.Hour
	// caBackdate covers a clock that is a little behind the one that
	// created the CA.
	caBackdate = time.Hour
)

// invalidDomain is the only domain the CA permits in e-mail and URI names:
// .invalid is reserved (RFC 2606) and never resolves, so a permitted subtree
// of it forbids every usable name of those types, with the meaning RFC 5280
// gives permitted subtrees (an empty excluded constraint would also work in
// Go, but RFC 5280 leaves its meaning unspecified).
const invalidDomain = "invalid"

// CA is a loaded local certificate authority: its certificate and its ECDSA
// P-256 key. It is safe for concurrent use.
type CA struct {
	dir  string
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	pool *x509.CertPool // only this CA, for verifying the leaves it mints
}

// DefaultDir returns the CA directory for the environment env ("NAME=value"
// entries, os.Environ() in main): $XDG_DATA_HOME/ecrgate/ca, with
// XDG_DATA_HOME defaulting to $HOME/.local/share (a relative XDG_DATA_HOME is
// ignored, as the XDG specification asks), or on Windows, where HOME is
// usually unset, to %LOCALAPPDATA% (%LOCALAPPDATA%\ecrgate\ca). It returns
// "" when none of them is set.
func DefaultDir(env []string) string { return defaultDir(runtime.GOOS, env) }

// defaultDir is DefaultDir for the operating system goos.
func defaultDir(goos string, env []string) string {
	if d := environ.Get(env, "XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "ecrgate", "ca")
	}
	if l := environ.Get(env, "LOCALAPPDATA"); goos == "windows" && filepath.IsAbs(l) {
		return filepath.Join(l, "ecrgate", "ca")
	}
	if h := environ.Get(env, "HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "ecrgate", "ca")
	}
	return ""
}

// PermittedDomains returns the DNS domains a new CA permits: the parent
// domain of every registry host ecrhost.Parse accepts in a region of its table
// ("dkr.ecr.us-east-1.amazonaws.com", "dkr-ecr-fips.us-east-1.on.aws", …),
// then those of the regions AWS most likely opens next (the next
// nextRegions numbers of every known area and word: "dkr.ecr.eu-south-3.amazonaws.com"),
// then "public.ecr.aws". A permitted domain covers itself and its subdomains,
// so "<account>.dkr.ecr.us-east-1.amazonaws.com" is covered while
// "s3.amazonaws.com" or "sts.us-east-1.amazonaws.com" is not.
//
// A region outside the list (a new area code or word) is not covered: a name
// constraint cannot wildcard the region label, and the domain that would
// cover every region ("amazonaws.com") covers every AWS service too; such a
// region needs a release and a new CA for intercept mode.
func PermittedDomains() []string {
	known := ecrhost.RegistryDomains()
	out := append([]string(nil), known[:len(known)-1]...) // all but public.ecr.aws
	for _, r := range ecrhost.NextRegions(nextRegions) {
		out = append(out, ecrhost.RegionDomains(r)...)
	}
	return append(out, ecrhost.PublicHost)
}

// nextRegions is how many numbers past the highest known one the CA permits
// for every known area and word (eu-south-1 and -2 known: -3 to -5).
const nextRegions = 3

// Init creates a new CA in dir and returns it. It creates dir (mode 0700) if
// needed and writes KeyFile (0600) and CertFile (0644), each atomically; it
// never replaces an existing CA: if either file exists it returns an error
// that says how to start over. now is the creation time (time.Now() in
// main); the CA is valid for ten years from it.
func Init(dir string, now time.Time) (*CA, error) {
	if dir == "" {
		return nil, errors.New("no CA directory: set HOME or XDG_DATA_HOME, or pass --dir")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{KeyFile, CertFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil, existsError(dir)
		}
	}
	if err := mkdirPrivate(dir); err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	hostname, err := os.Hostname()
	if err != nil || hostname == "" {
		hostname = "unknown host"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("ecrgate local CA (%s)", hostname),
			Organization: []string{"ecrgate"},
		},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// Verifiers (Go's among them) require a leaf's extended key usage
		// to be allowed by every CA above it: this CA vouches for TLS
		// servers only.
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         PermittedDomains(),
		ExcludedIPRanges: []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		},
		PermittedEmailAddresses: []string{invalidDomain},
		PermittedURIDomains:     []string{invalidDomain},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create the CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the CA key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	keyPath := filepath.Join(dir, KeyFile)
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, existsError(dir)
		}
		return nil, fmt.Errorf("write the CA key: %w", err)
	}
	if err := writeNew(filepath.Join(dir, CertFile), certPEM, 0o644); err != nil {
		// The key is ours and useless without its certificate.
		_ = os.Remove(keyPath)
		if errors.Is(err, fs.ErrExist) {
			return nil, existsError(dir)
		}
		return nil, fmt.Errorf("write the CA certificate: %w", err)
	}
	syncDir(dir)
	return newCA(dir, der, certPEM, key)
}

// existsError is Init's refusal to replace a CA.
func existsError(dir string) error {
	return fmt.Errorf("a local CA already exists in %s; ecrgate never replaces it: to start over, run \"ecrgate ca uninstall\", remove %s and %s, then run \"ecrgate ca init\" again",
		dir, filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile))
}

// Load reads the CA in dir. It refuses a directory that its group or others
// may enter, a key file that its group or others may read or that is a
// symbolic link, a directory or key of another user (unless running as
// root), a certificate that is not a CA, and a key that does not belong to
// the certificate; every error says what to do. Only when there is no CA
// certificate at all does the error wrap fs.ErrNotExist.
func Load(dir string) (*CA, error) {
	if dir == "" {
		return nil, errors.New("no CA directory: set HOME or XDG_DATA_HOME, or pass --dir")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no local CA in %s: run \"ecrgate ca init\" first: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	err = checkPrivateKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Not wrapped: only a missing certificate means "no CA yet".
		return nil, fmt.Errorf("%s is missing although %s exists: remove %s and run \"ecrgate ca init\" again", keyPath, certPath, certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w", err)
	}

	der, err := decodePEM(certPEM, "CERTIFICATE", certPath)
	if err != nil {
		return nil, err
	}
	keyDER, err := decodePEM(keyPEM, "PRIVATE KEY", keyPath)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt (not a PKCS#8 private key): remove the CA files and run \"ecrgate ca init\" again: %w", keyPath, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not an ECDSA key: remove the CA files and run \"ecrgate ca init\" again", keyPath, parsed)
	}
	return newCA(dir, der, certPEM, key)
}

// decodePEM returns the DER bytes of the single PEM block of type typ in data.
func decodePEM(data []byte, typ, path string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s is corrupt (want one PEM %q block): remove the CA files and run \"ecrgate ca init\" again", path, typ)
	}
	return block.Bytes, nil
}

// newCA checks that der is a CA certificate for key and builds the CA.
func newCA(dir string, der, certPEM []byte, key *ecdsa.PrivateKey) (*CA, error) {
	certPath := filepath.Join(dir, CertFile)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: remove the CA files and run \"ecrgate ca init\" again: %w", certPath, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate: remove the CA files and run \"ecrgate ca init\" again", certPath)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s and %s do not belong together: remove both and run \"ecrgate ca init\" again", filepath.Join(dir, KeyFile), certPath)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{dir: dir, cert: cert, key: key, pem: certPEM, pool: pool}, nil
}

// Dir returns the absolute directory the CA lives in.
func (c *CA) Dir() string { return c.dir }

// Certificate returns the CA certificate. The caller must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// PEM returns the CA certificate in PEM form, as in CertFile.
func (c *CA) PEM() []byte { return bytes.Clone(c.pem) }

// Fingerprint returns the SHA-256 fingerprint of the CA certificate as
// upper-case hex pairs joined by colons, as openssl x509 -fingerprint
// -sha256 prints it.
func (c *CA) Fingerprint() string {
	sum := sha256.Sum256(c.cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	pairs := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return strings.Join(pairs, ":")
}

// Permits reports whether the CA's DNS name constraints permit host. A CA
// made by an older ecrgate may lack a region added since; Minter and
// Install check this to say so instead of handing out a certificate Docker
// would reject.
func (c *CA) Permits(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range c.cert.ExcludedDNSDomains {
		if matchDomain(host, d) {
			return false
		}
	}
	if len(c.cert.PermittedDNSDomains) == 0 {
		return true
	}
	for _, d := range c.cert.PermittedDNSDomains {
		if matchDomain(host, d) {
			return true
		}
	}
	return false
}

// matchDomain reports whether host is constraint or under it (RFC 5280
// dNSName subtrees; a leading dot means subdomains only).
func matchDomain(host, constraint string) bool {
	constraint = strings.ToLower(constraint)
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(host, constraint)
	}
	return host == constraint || strings.HasSuffix(host, "."+constraint)
}

// randomSerial returns a positive random 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// mkdirPrivate creates dir and its parents; dir itself, if created here,
// gets mode 0700 whatever the umask (on Windows, an access control list for
// the current user and SYSTEM alone, private.Restrict). An existing dir is left as it is, and
// refused if it is not private (see checkPrivateDir).
func mkdirPrivate(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return checkPrivateDir(dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create the CA directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create the CA directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if err := private.Restrict(dir); err != nil {
		return fmt.Errorf("create the CA directory: %w", err)
	}
	return nil
}

// writeNew atomically creates path; see atomicfile.Create.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	return atomicfile.Create(path, data, perm)
}

// syncDir flushes dir's entries to disk, where the platform allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
