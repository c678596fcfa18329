package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

const testHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// epoch is the fixed creation time of test CAs.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	sharedOnce sync.Once
	sharedCA   *CA
	sharedErr  error
)

// testCA returns one CA per test binary (creating a key costs little, but
// there is no need to repeat it).
func testCA(t *testing.T) *CA {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "localca-test-")
		if err != nil {
			sharedErr = err
			return
		}
		sharedCA, sharedErr = Init(filepath.Join(dir, "ca"), epoch)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedCA
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCA != nil {
		os.RemoveAll(filepath.Dir(sharedCA.Dir()))
	}
	os.Exit(code)
}

// signLeaf signs a leaf with the CA's key directly, bypassing the Minter's
// refusals, as a thief holding the key could.
func signLeaf(t *testing.T, ca *CA, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(42)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = epoch, epoch.Add(time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// verify checks leaf for name as a client trusting only ca would, a minute
// after epoch.
func verify(ca *CA, leaf *x509.Certificate, name string) error {
	return verifyAt(ca, leaf, name, epoch.Add(time.Minute))
}

func verifyAt(ca *CA, leaf *x509.Certificate, name string, now time.Time) error {
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:     name,
		Roots:       ca.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// TestNameConstraintsPermitECR signs a leaf for every host form ecrhost
// accepts, and for every permitted domain, and checks each verifies.
func TestNameConstraintsPermitECR(t *testing.T) {
	ca := testCA(t)
	hosts := []string{
		testHost,
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
		"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
		"123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com",
		"123456789012.dkr-ecr.us-east-1.on.aws",
		"123456789012.dkr-ecr-fips.us-west-2.on.aws",
		"123456789012.dkr-ecr.us-gov-west-1.on.aws",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
		"123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn",
		"123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
		"123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
		"123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
		// Regions newer than ecrhost's table, as AWS usually opens them.
		"123456789012.dkr.ecr.eu-south-3.amazonaws.com",
		"123456789012.dkr-ecr.eu-south-3.on.aws",
		"123456789012.dkr.ecr.ap-southeast-9.amazonaws.com",
		"123456789012.dkr.ecr-fips.us-east-3.amazonaws.com",
		"123456789012.dkr.ecr.us-gov-west-2.amazonaws.com",
		ecrhost.PublicHost,
	}
	for _, d := range PermittedDomains() {
		if d != ecrhost.PublicHost {
			hosts = append(hosts, "123456789012."+d)
		}
	}
	for _, h := range hosts {
		r, err := ecrhost.Parse(h)
		if err != nil || r.Host != h {
			t.Fatalf("test host %s: ecrhost.Parse = %+v, %v", h, r, err)
		}
		leaf := signLeaf(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: h}, DNSNames: []string{h}})
		if err := verify(ca, leaf, h); err != nil {
			t.Errorf("leaf for %s: %v", h, err)
		}
		if !ca.Permits(h) {
			t.Errorf("Permits(%s) = false", h)
		}
	}
}

// TestNameConstraintsRefuseOthers signs leaves for names outside the ECR
// registry domains with the CA key itself: no verifier may accept them.
func TestNameConstraintsRefuseOthers(t *testing.T) {
	ca := testCA(t)
	tests := []struct {
		name string // what the client connects to
		tmpl x509.Certificate
	}{
		{"example.com", x509.Certificate{DNSNames: []string{"example.com"}}},
		{"example.com", x509.Certificate{DNSNames: []string{"example.com", testHost}}},
		{"amazonaws.com", x509.Certificate{DNSNames: []string{"amazonaws.com"}}},
		{"s3.amazonaws.com", x509.Certificate{DNSNames: []string{"s3.amazonaws.com"}}},
		{"sts.us-east-1.amazonaws.com", x509.Certificate{DNSNames: []string{"sts.us-east-1.amazonaws.com"}}},
		{"api.ecr.us-east-1.amazonaws.com", x509.Certificate{DNSNames: []string{"api.ecr.us-east-1.amazonaws.com"}}},
		{"prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com", x509.Certificate{DNSNames: []string{"prod-us-east-1-starport-layer-bucket.s3.us-east-1.amazonaws.com"}}},
		{"x.on.aws", x509.Certificate{DNSNames: []string{"x.on.aws"}}},
		{"gallery.ecr.aws", x509.Certificate{DNSNames: []string{"gallery.ecr.aws"}}},
		{"evildkr.ecr.us-east-1.amazonaws.com", x509.Certificate{DNSNames: []string{"evildkr.ecr.us-east-1.amazonaws.com"}}},
		{"dkr.ecr.us-east-1.amazonaws.com.evil.com", x509.Certificate{DNSNames: []string{"dkr.ecr.us-east-1.amazonaws.com.evil.com"}}},
		{"api.ecr.eu-south-3.amazonaws.com", x509.Certificate{DNSNames: []string{"api.ecr.eu-south-3.amazonaws.com"}}},
		{"amazonaws.eu", x509.Certificate{DNSNames: []string{"amazonaws.eu"}}},
		// A region no CA list can foresee (a new word or area code): ecrhost
		// accepts it, the CA does not cover it, and no wildcard constraint does.
		{"123456789012.dkr.ecr.us-gov-north-2.amazonaws.com", x509.Certificate{DNSNames: []string{"123456789012.dkr.ecr.us-gov-north-2.amazonaws.com"}}},
		{"123456789012.dkr.ecr.nz-north-1.amazonaws.com", x509.Certificate{DNSNames: []string{"123456789012.dkr.ecr.nz-north-1.amazonaws.com"}}},
		{"www.example.com", x509.Certificate{DNSNames: []string{"*.example.com"}}},
		{"127.0.0.1", x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}},
		{"10.1.2.3", x509.Certificate{IPAddresses: []net.IP{net.ParseIP("10.1.2.3")}}},
		{"::1", x509.Certificate{IPAddresses: []net.IP{net.IPv6loopback}}},
		{testHost, x509.Certificate{DNSNames: []string{testHost}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}},
		{testHost, x509.Certificate{DNSNames: []string{testHost}, EmailAddresses: []string{"admin@example.com"}}},
		{testHost, x509.Certificate{DNSNames: []string{testHost}, URIs: []*url.URL{{Scheme: "https", Host: "example.com"}}}},
	}
	for _, tt := range tests {
		tmpl := tt.tmpl
		leaf := signLeaf(t, ca, &tmpl)
		err := verify(ca, leaf, tt.name)
		var inv x509.CertificateInvalidError
		if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("leaf %v %v %v %v for %s: err = %v, want a name-constraint violation", tmpl.DNSNames, tmpl.IPAddresses, tmpl.EmailAddresses, tmpl.URIs, tt.name, err)
		}
	}
	for _, h := range []string{"example.com", "amazonaws.com", "s3.amazonaws.com", "evildkr.ecr.us-east-1.amazonaws.com"} {
		if ca.Permits(h) {
			t.Errorf("Permits(%s) = true", h)
		}
	}
}

// TestCACertificate checks the extensions Init writes.
func TestCACertificate(t *testing.T) {
	ca := testCA(t)
	c := ca.Certificate()
	if !c.IsCA || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("IsCA %v MaxPathLen %d MaxPathLenZero %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v", c.KeyUsage)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if !strings.HasPrefix(c.Subject.CommonName, "ecrgate local CA (") {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if got := c.NotAfter.Sub(epoch); got < 3650*24*time.Hour || got > 3660*24*time.Hour {
		t.Errorf("validity %v, want ten years", got)
	}
	if !slices.Equal(c.PermittedDNSDomains, PermittedDomains()) {
		t.Errorf("PermittedDNSDomains = %v", c.PermittedDNSDomains)
	}
	var ips []string
	for _, n := range c.ExcludedIPRanges {
		ips = append(ips, n.String())
	}
	if !slices.Equal(ips, []string{"0.0.0.0/0", "::/0"}) {
		t.Errorf("ExcludedIPRanges = %v", ips)
	}
	critical := false
	for _, e := range c.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 30}) {
			critical = e.Critical
		}
	}
	if !critical || !c.PermittedDNSDomainsCritical {
		t.Error("the name constraints extension is not critical")
	}
	fp := ca.Fingerprint()
	if len(fp) != 32*3-1 || strings.Count(fp, ":") != 31 || strings.ToUpper(fp) != fp {
		t.Errorf("Fingerprint() = %q", fp)
	}
}

func TestInitAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	ca, err := Init(dir, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for name, want := range map[string]os.FileMode{"": 0o700, KeyFile: 0o600, CertFile: 0o644} {
			info, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != want {
				t.Errorf("%s: mode %04o, want %04o", filepath.Join(dir, name), got, want)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("CA directory holds %d entries, want ca.crt and ca.key (no temporary files)", len(entries))
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key file is not PKCS#8 PEM: %.40q", keyPEM)
	}

	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Fingerprint() != ca.Fingerprint() || string(loaded.PEM()) != string(ca.PEM()) {
		t.Error("Load returned another CA than Init")
	}

	// Never overwrite.
	_, err = Init(dir, epoch)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "remove") {
		t.Errorf("second Init: %v, want a refusal that says how to start over", err)
	}
	if again, _ := Load(dir); again == nil || again.Fingerprint() != ca.Fingerprint() {
		t.Error("second Init changed the CA")
	}
	// Not even when only the certificate is left.
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, epoch); err == nil {
		t.Error("Init replaced a lone ca.crt")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "missing") || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load without the key: %v, want an error that does not read as \"no CA\"", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `run "ecrgate ca init"`) {
		t.Errorf("Load of a missing CA: %v", err)
	}

	newDir := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "ca")
		if _, err := Init(dir, epoch); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if runtime.GOOS != "windows" {
		for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
			dir := newDir(t)
			if err := os.Chmod(filepath.Join(dir, KeyFile), mode); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("Load with key mode %04o: %v, want a refusal naming chmod 600", mode, err)
			}
		}
	}

	dir := newDir(t)
	if err := os.WriteFile(filepath.Join(dir, CertFile), []byte("not pem\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Load with a corrupt certificate: %v", err)
	}

	dir = newDir(t)
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Load with a corrupt key: %v", err)
	}

	// A key from another CA.
	dir, other := newDir(t), newDir(t)
	b, _ := os.ReadFile(filepath.Join(other, KeyFile))
	if err := os.WriteFile(filepath.Join(dir, KeyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "do not belong together") {
		t.Errorf("Load with a foreign key: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"HOME=/home/u"}, "/home/u/.local/share/ecrgate/ca"},
		{[]string{"HOME=/home/u", "XDG_DATA_HOME=/data"}, "/data/ecrgate/ca"},
		{[]string{"HOME=/home/u", "XDG_DATA_HOME=relative"}, "/home/u/.local/share/ecrgate/ca"},
		{[]string{"XDG_DATA_HOME=/a", "XDG_DATA_HOME=/b"}, "/b/ecrgate/ca"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := DefaultDir(tt.env); got != filepath.FromSlash(tt.want) {
			t.Errorf("DefaultDir(%q) = %q, want %q", tt.env, got, tt.want)
		}
	}
}
