package config

// allow_remote, tls and shared_proxies (issue #15): a shared team proxy
// listens off loopback only with TLS and allow_remote, and its clients name
// it in shared_proxies.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate and its key as cert.pem and
// key.pem in dir.
func writePair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ecrgate.example.internal"},
		DNSNames: []string{"ecrgate.example.internal"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestSharedProxyConfigLoads(t *testing.T) {
	dir := t.TempDir()
	writePair(t, filepath.Join(dir)) // cert.pem, key.pem beside the config
	yaml := "listen: 0.0.0.0:5000\nadmin_listen: 0.0.0.0:5002\nintercept: {listen: '[::]:5001'}\nallow_remote: true\n" +
		"tls: {cert_file: cert.pem, key_file: ~/key.pem}\ndefault_registry: " + acct1 + "\n"
	c, err := Parse([]byte(yaml), filepath.Join(dir, "config.yaml"), []string{"HOME=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	if !c.AllowRemote || c.TLS.CertFile != filepath.Join(dir, "cert.pem") || c.TLS.KeyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("allow_remote %v, tls %+v", c.AllowRemote, c.TLS)
	}
	for _, key := range []string{KeyListen, KeyAdminListen, KeyInterceptListen} {
		if err := c.CheckListen(key, "0.0.0.0:1"); err != nil {
			t.Errorf("CheckListen(%s): %v", key, err)
		}
	}

	client, err := Parse([]byte("shared_proxies:\n  ecrgate.example.internal:5000: "+strings.ToUpper(acct1)+"\n"), "config.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if reg, ok := client.SharedProxyRegistry("ECRGATE.example.internal:5000"); !ok || reg != acct1 {
		t.Errorf("SharedProxyRegistry = %q, %v", reg, ok)
	}
}

func TestSharedProxyConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir)
	other := t.TempDir()
	otherCert, _ := writePair(t, other)
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "tls: {cert_file: " + cert + ", key_file: " + key + "}\n"
	for _, tc := range []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"remote listen without allow_remote", "log_level: info\nlisten: 0.0.0.0:5000\n", 2, "listen", "set allow_remote: true and tls"},
		{"remote listen without tls", "allow_remote: true\nlisten: 192.0.2.1:5000\n", 2, "listen", "needs tls: {cert_file, key_file}"},
		{"remote intercept without tls", "allow_remote: true\nintercept:\n  listen: ecrgate.example.internal:5001\n", 3, "intercept.listen", "needs tls"},
		{"remote intercept without allow_remote", good + "intercept:\n  listen: ':5001'\n", 3, "intercept.listen", "allow_remote: true"},
		{"remote admin without allow_remote", good + "admin_listen: 0.0.0.0:5002\n", 2, "admin_listen", "set allow_remote: true"},
		{"allow_remote not a bool", "allow_remote: yes please\n", 1, "allow_remote", "want true or false"},
		{"cert without key", "tls:\n  cert_file: " + cert + "\n", 2, "tls.cert_file", "needs tls.key_file"},
		{"key without cert", "tls:\n  key_file: " + key + "\n", 2, "tls.key_file", "needs tls.cert_file"},
		{"unknown tls key", "tls:\n  certfile: x\n", 2, "tls", `unknown key "certfile" (did you mean "cert_file"?)`},
		{"missing cert file", "tls:\n  cert_file: " + filepath.Join(dir, "nope.pem") + "\n  key_file: " + key + "\n", 2, "tls.cert_file", "no such file"},
		{"not a pair", "log_level: info\ntls: {cert_file: " + otherCert + ", key_file: " + key + "}\n", 2, "tls", "are not a certificate and its private key"},
		{"junk cert", "tls: {cert_file: " + filepath.Join(dir, "junk.pem") + ", key_file: " + key + "}\n", 1, "tls", "are not a certificate and its private key"},
		{"shared proxy on loopback", "shared_proxies:\n  localhost:5000: " + acct1 + "\n", 2, `shared_proxies["localhost:5000"]`, "is this machine"},
		{"shared proxy on 127.0.0.1", "shared_proxies:\n  127.0.0.1:5000: " + acct1 + "\n", 2, `shared_proxies["127.0.0.1:5000"]`, "is this machine"},
		{"shared proxy also local", "local_hosts: {'proxy.internal:5000': " + acct1 + "}\nshared_proxies:\n  proxy.internal:5000: " + acct1 + "\n", 3, `shared_proxies["proxy.internal:5000"]`, "is also in local_hosts"},
		{"shared proxy is ECR", "shared_proxies:\n  " + acct1 + ": " + acct1 + "\n", 2, `shared_proxies["` + acct1 + `"]`, "is an ECR registry itself"},
		{"shared proxy with a path", "shared_proxies:\n  'proxy.internal/x': " + acct1 + "\n", 2, `shared_proxies["proxy.internal/x"]`, "must be a host or host:port"},
		{"shared proxy without registry", "shared_proxies:\n  proxy.internal:5000: ''\n", 2, `shared_proxies["proxy.internal:5000"]`, "required"},
		{"shared proxy to ECR Public", "shared_proxies:\n  proxy.internal:5000: public.ecr.aws\n", 2, `shared_proxies["proxy.internal:5000"]`, "ECR Public"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "config.yaml", nil)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			want := "config.yaml:" + itoa(tc.line) + ": " + tc.key + ": "
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(l, want) && strings.Contains(l, tc.msg) {
					return
				}
			}
			t.Errorf("error:\n%v\nwant a line starting %q containing %q", err, want, tc.msg)
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// A Config built in code is held to the same rule by CheckListen, which
// the server asks before it listens.
func TestCheckListenInCode(t *testing.T) {
	c := Default(nil)
	if err := c.CheckListen(KeyListen, "127.0.0.1:5000"); err != nil {
		t.Errorf("loopback: %v", err)
	}
	if err := c.CheckListen(KeyListen, "0.0.0.0:5000"); err == nil || !strings.Contains(err.Error(), "every network interface") {
		t.Errorf("remote without allow_remote: %v", err)
	}
	c.AllowRemote = true
	if err := c.CheckListen(KeyListen, "0.0.0.0:5000"); err == nil || !strings.Contains(err.Error(), "needs tls") {
		t.Errorf("remote without tls: %v", err)
	}
	if err := c.CheckListen(KeyAdminListen, "0.0.0.0:5002"); err != nil {
		t.Errorf("remote admin with allow_remote: %v", err)
	}
	c.TLS = TLS{CertFile: "c", KeyFile: "k"}
	if err := c.CheckListen(KeyInterceptListen, "0.0.0.0:5001"); err != nil {
		t.Errorf("remote intercept with allow_remote and tls: %v", err)
	}
}

// shared_proxies chooses where the credential helper sends tokens, like an
// endpoint: LoadTolerant drops it from a file others could have written.
func TestLoadTolerantIgnoresSharedProxiesOthersCouldSet(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and owners are not checked on Windows")
	}
	dir := filepath.Join(t.TempDir(), "c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte("shared_proxies:\n  proxy.internal:5000: "+acct1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, warn, err := LoadTolerant(p, testEnv)
	if err != nil || warn != nil || len(c.SharedProxies) != 1 {
		t.Fatalf("private file: %+v, %v, %v", c, warn, err)
	}
	if err := os.Chmod(p, 0o664); err != nil {
		t.Fatal(err)
	}
	c, warn, err = LoadTolerant(p, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SharedProxies) != 0 || warn == nil || !strings.Contains(warn.Error(), "shared_proxies") {
		t.Errorf("file others can write: shared_proxies %v, warning %v; want them dropped and named", c.SharedProxies, warn)
	}
}
