//go:build e2e

// Issue #15, a shared team proxy: `ecrgate serve` with allow_remote: true
// and tls, several replicas in front of one ECR (the emulator), every
// client with its own ECR token.
//
//   - TestTeamReplicas: three replicas, 48 concurrent pushes of 16 new
//     repositories spread over all three; one creation per repository.
//   - TestTeamRemoteClients: a client in a network namespace of its own
//     (over a veth pair) and a loopback client, without a token, with a
//     bogus one and with another account's: refused, nothing created.
//   - TestTeamCertRotation: the certificate files of a running replica are
//     replaced (rename, and the kubelet's ..data symlink swap): new
//     connections get the new certificate, a push in flight finishes.

package e2e

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
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
)

const (
	// teamAccount is the registry the replicas serve (the emulator's
	// default account); otherAccount is another team's registry.
	teamAccount  = "123456789012"
	otherAccount = "210987654321"
	// teamHostName is the replicas' DNS name, as a Kubernetes Service
	// would give it; clients dial it on 127.0.0.1.
	teamHostName = "ecrgate.team.test"

	// A second user of the team's account, and a user of the other one.
	teamUser2Key, teamUser2Secret = "AKIAE2ETEAM000000002", "e2e-team-user-2-secret"
	otherUserKey, otherUserSecret = "AKIAE2EOTHER00000001", "e2e-other-account-secret"

	teamLifecyclePolicy = `{"rules":[{"rulePriority":1,"description":"expire untagged images after 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}`
	teamRepoPolicy      = `{"Version":"2012-10-17","Statement":[{"Sid":"PullFromProd","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + otherAccount + `:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
)

// teamTemplate is the creation template every replica has for team/….
var teamTemplate = "templates:\n  - prefix: team\n    image_tag_mutability: IMMUTABLE\n    scan_on_push: true\n" +
	"    lifecycle_policy: '" + teamLifecyclePolicy + "'\n    repository_policy: '" + teamRepoPolicy + "'\n" +
	"    tags: {team: platform, cost-center: \"42\"}\n"

// --- the emulator, counting what succeeded -----------------------------------

// teamEmulator is the in-process emulator behind a front that counts the
// control-plane calls that succeeded (ecrfake's own counts include those
// that failed, such as a CreateRepository answered
// RepositoryAlreadyExistsException).
type teamEmulator struct {
	*ecrfake.Emulator
	front *httptest.Server

	mu sync.Mutex
	ok map[string]int // operation -> 2xx answers
}

func startTeamEmulator(t *testing.T) *teamEmulator {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{teamAccount, otherAccount}, Users: []ecrfake.User{
		{Name: "team-user-2", Account: teamAccount, AccessKey: teamUser2Key, SecretKey: teamUser2Secret},
		{Name: "other", Account: otherAccount, AccessKey: otherUserKey, SecretKey: otherUserSecret},
	}})
	te := &teamEmulator{Emulator: e, ok: map[string]int{}}
	te.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, op, isAPI := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		rec := &teamStatusRecorder{ResponseWriter: w}
		e.ServeHTTP(rec, r)
		if isAPI && rec.code() < 300 {
			te.mu.Lock()
			te.ok[op]++
			te.mu.Unlock()
		}
	}))
	t.Cleanup(te.front.Close)
	return te
}

// URL is the front's, which the replicas use as endpoint and api_endpoint.
func (te *teamEmulator) URL() string { return te.front.URL }

func (te *teamEmulator) succeeded(op string) int {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.ok[op]
}

// api is an ECR client with the given user's keys.
func (te *teamEmulator) api(key, secret string) *ecr.Client {
	return ecr.NewFromConfig(aws.Config{Region: te.Region(), BaseEndpoint: aws.String(te.Emulator.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")})
}

// teamToken is a client's own ECR token: the password of
// GetAuthorizationToken and the Authorization header that carries it.
type teamToken struct {
	password, header string
}

func (tok teamToken) auth() authn.Authenticator {
	if tok.password == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: "AWS", Password: tok.password}
}

// fingerprint is the audit's token fingerprint of this client, as the
// issue documents it: the first 12 hex digits of the SHA-256 of the
// Authorization value.
func (tok teamToken) fingerprint() string {
	sum := sha256.Sum256([]byte(tok.header))
	return hex.EncodeToString(sum[:6])
}

func bogusToken() teamToken {
	pw := "bogus-" + strings.Repeat("x", 40)
	return teamToken{password: pw, header: "Basic " + base64.StdEncoding.EncodeToString([]byte("AWS:"+pw))}
}

func (te *teamEmulator) token(t *testing.T, key, secret string) teamToken {
	t.Helper()
	out, err := te.api(key, secret).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil || len(out.AuthorizationData) == 0 {
		t.Fatalf("GetAuthorizationToken as %s: %v", key, err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := strings.CutPrefix(string(raw), "AWS:")
	if !ok {
		t.Fatalf("token is not AWS:<password>")
	}
	return teamToken{password: pw, header: "Basic " + base64.StdEncoding.EncodeToString(raw)}
}

// teamStatusRecorder remembers the status a handler wrote.
type teamStatusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *teamStatusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *teamStatusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *teamStatusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *teamStatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *teamStatusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// --- certificates ------------------------------------------------------------

// teamPKI is a test CA and the server certificates it issues.
type teamPKI struct {
	ca     *x509.Certificate
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool
	caFile string
}

func newTeamPKI(t *testing.T) *teamPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ecrgate e2e team CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &teamPKI{ca: ca, key: key, pool: x509.NewCertPool(), caFile: filepath.Join(t.TempDir(), "ca.crt")}
	p.pool.AddCert(ca)
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue returns a server certificate (PEM, with the CA after the leaf) and
// its key for teamHostName and ips, and its serial number.
func (p *teamPKI) issue(t *testing.T, ips ...net.IP) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: teamHostName},
		DNSNames:     []string{teamHostName},
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})...)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), serial
}

// writePair writes a certificate and key into dir as tls.crt and tls.key.
func writePair(t *testing.T, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// clientTransport is a client's own transport: it trusts the test CA only
// and dials teamHostName on 127.0.0.1.
func (p *teamPKI) clientTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == teamHostName {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return tr
}

// serialAt opens a new TLS connection to addr (host:port) and returns the
// serial number of the leaf certificate it verified.
func (p *teamPKI) serialAt(addr string) (*big.Int, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config: &tls.Config{RootCAs: p.pool, ServerName: teamHostName, MinVersion: tls.VersionTLS12}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// --- replicas ----------------------------------------------------------------

// teamReplica is one `ecrgate serve` of the shared proxy.
type teamReplica struct {
	name    string
	addr    string // host:port of its TLS registry listener
	logPath string
}

// port is the replica's registry port.
func (r *teamReplica) port() string {
	_, p, _ := net.SplitHostPort(r.addr)
	return p
}

// freePortOn returns an address on host whose port was free a moment ago.
func freePortOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startTeamReplica runs bin/ecrgate serve as a replica of the shared proxy:
// allow_remote, TLS from certFile and keyFile, its registry listener on
// listenHost, the team template, audit lines to audit, and te's front as
// the registry's data-plane and API endpoint; its own AWS identity is the
// emulator's default user. It is stopped with SIGTERM at cleanup and must
// exit 0; its log must hold no credential of tokens.
func startTeamReplica(t *testing.T, te *teamEmulator, name, listenHost, certFile, keyFile, audit string, tokens ...teamToken) *teamReplica {
	t.Helper()
	bin := binDir(t)
	dir := t.TempDir()
	listen, admin := freePortOn(t, listenHost), freePort(t)
	const registry = teamAccount + ".dkr.ecr.us-east-1.amazonaws.com"
	cfg := fmt.Sprintf(`listen: %s
admin_listen: %s
allow_remote: true
tls: {cert_file: %s, key_file: %s}
log_level: debug
audit_log: %s
default_registry: %s
registries:
  - host: %s
    endpoint: %s
    api_endpoint: %s
%s`, listen, admin, certFile, keyFile, audit, registry, registry, te.URL(), te.URL(), teamTemplate)
	cfgPath := filepath.Join(dir, "ecrgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &teamReplica{name: name, addr: listen, logPath: filepath.Join(dir, "serve.log")}
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "ecrgate"), "serve", "--config", cfgPath)
	cmd.Env = append(baseEnv(t), te.Env()...)
	cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL_ECR="+te.URL(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: ecrgate serve exited with %v", name, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s: ecrgate serve did not stop within 30s of SIGTERM", name)
		}
		logf.Close()
		b, _ := os.ReadFile(r.logPath)
		for _, tok := range tokens {
			if tok.password != "" && (bytes.Contains(b, []byte(tok.password)) || bytes.Contains(b, []byte(tok.header))) {
				t.Errorf("%s: a client's token reached ecrgate's log", name)
			}
		}
		if t.Failed() {
			t.Logf("%s: ecrgate serve log (last 80 lines):\n%s", name, lastLines(string(b), 80))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(r.logPath)
			t.Fatalf("%s: ecrgate serve exited (%v) before it was healthy:\n%s", name, err, b)
		case <-ctx.Done():
			b, _ := os.ReadFile(r.logPath)
			t.Fatalf("%s: ecrgate serve did not become healthy:\n%s", name, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// teamAuditRecord is what the tests read of an audit line.
type teamAuditRecord struct {
	Registry   string `json:"registry"`
	Repository string `json:"repository"`
	Template   string `json:"template"`
	Client     string `json:"client"`
	Token      string `json:"token"`
	DryRun     bool   `json:"dry_run"`
}

// readAudit returns the audit file's records (none when it does not exist)
// and its raw content.
func readAudit(t *testing.T, path string) ([]teamAuditRecord, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []teamAuditRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r teamAuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out, b
}

// smallImage is a one-layer image with random content.
func smallImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// --- 1. three replicas, 48 concurrent pushes ---------------------------------

// TestTeamReplicas: three `ecrgate serve` replicas with TLS on loopback
// ports, one emulator; 48 concurrent pushes (go-containerregistry, each
// client with its own token, two identities) of 16 new repositories, every
// repository pushed once through each replica. All succeed; each
// repository has the template's settings, applied once (CreateRepository
// succeeded 16 times, the policies were put 16 times); the shared audit
// file has 16 lines, one per repository, with the client's address and
// token fingerprint and never the token.
func TestTeamReplicas(t *testing.T) {
	binDir(t)
	te := startTeamEmulator(t)
	pki := newTeamPKI(t)
	tokens := []teamToken{te.token(t, te.AccessKey(), te.SecretKey()), te.token(t, teamUser2Key, teamUser2Secret)}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	var replicas []*teamReplica
	for i := range 3 {
		certPEM, keyPEM, _ := pki.issue(t, net.IPv4(127, 0, 0, 1))
		certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
		replicas = append(replicas, startTeamReplica(t, te, fmt.Sprintf("replica-%d", i), "127.0.0.1", certFile, keyFile, audit, tokens...))
	}

	const repos, perRepo = 16, 3
	type push struct {
		repo, ref string
		replica   int
		tok       teamToken
		err       error
		dur       time.Duration
		digest    v1.Hash
	}
	var pushes []*push
	for r := range repos {
		for k := range perRepo {
			rep := (r + k) % len(replicas) // every repository through each replica
			repo := fmt.Sprintf("team/app-%02d", r)
			pushes = append(pushes, &push{repo: repo, replica: rep, tok: tokens[(r+k)%len(tokens)],
				ref: fmt.Sprintf("%s:%s/%s:r%d", teamHostName, replicas[rep].port(), repo, k)})
		}
	}
	mrand.Shuffle(len(pushes), func(i, j int) { pushes[i], pushes[j] = pushes[j], pushes[i] })
	imgs := make([]v1.Image, len(pushes))
	for i, p := range pushes {
		imgs[i] = smallImage(t)
		if p.digest, _ = imgs[i].Digest(); p.digest.Hex == "" {
			t.Fatal("image digest")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range pushes {
		wg.Go(func() {
			ref, err := name.ParseReference(p.ref)
			if err != nil {
				p.err = err
				return
			}
			tr := pki.clientTransport() // each client its own connections
			defer tr.CloseIdleConnections()
			<-gate
			t0 := time.Now()
			p.err = remote.Write(ref, imgs[i], remote.WithAuth(p.tok.auth()), remote.WithTransport(tr), remote.WithContext(ctx))
			p.dur = time.Since(t0)
		})
	}
	close(gate)
	wg.Wait()
	wall := time.Since(start)
	var slowest time.Duration
	for _, p := range pushes {
		if p.err != nil {
			t.Errorf("push %s through %s: %v", p.ref, replicas[p.replica].name, p.err)
		}
		slowest = max(slowest, p.dur)
	}
	t.Logf("%d concurrent pushes of %d new repositories through %d replicas: wall %s, slowest push %s", len(pushes), repos, len(replicas), wall.Round(time.Millisecond), slowest.Round(time.Millisecond))

	// Each repository exists with the template's settings, and each push's
	// image is there under its tag.
	api := te.api(te.AccessKey(), te.SecretKey())
	for r := range repos {
		checkTeamRepository(t, api, fmt.Sprintf("team/app-%02d", r))
	}
	for _, p := range pushes {
		ref, _ := name.ParseReference(p.ref)
		tag := ref.Identifier()
		out, err := api.DescribeImages(ctx, &ecr.DescribeImagesInput{RepositoryName: aws.String(p.repo),
			ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String(tag)}}})
		if err != nil || len(out.ImageDetails) != 1 || aws.ToString(out.ImageDetails[0].ImageDigest) != p.digest.String() {
			t.Errorf("%s:%s in the emulator: %v (want %s)", p.repo, tag, err, p.digest)
		}
	}

	// Created once, settings applied once.
	calls := te.CallCounts()
	t.Logf("emulator calls: %v; succeeded: CreateRepository %d", calls, te.succeeded("CreateRepository"))
	if n := te.succeeded("CreateRepository"); n != repos {
		t.Errorf("CreateRepository succeeded %d times, want %d", n, repos)
	}
	for _, op := range []string{"PutLifecyclePolicy", "SetRepositoryPolicy"} {
		if calls[op] != repos {
			t.Errorf("%s called %d times, want %d (once per repository, by the replica that created it)", op, calls[op], repos)
		}
	}
	for _, op := range []string{"TagResource", "PutImageScanningConfiguration", "PutImageTagMutability"} {
		if calls[op] > repos {
			t.Errorf("%s called %d times for %d repositories", op, calls[op], repos)
		}
	}

	// One audit line per repository across the replicas, naming the client
	// and its token's fingerprint, never the token.
	records, raw := readAudit(t, audit)
	if len(records) != repos {
		t.Errorf("audit lines = %d, want %d:\n%s", len(records), repos, raw)
	}
	fps := map[string]bool{}
	for _, tok := range tokens {
		fps[tok.fingerprint()] = true
		for _, secret := range []string{tok.password, tok.header, strings.TrimPrefix(tok.header, "Basic ")} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the audit file holds a client's token")
			}
		}
	}
	seen := map[string]int{}
	for _, rec := range records {
		seen[rec.Repository]++
		host, _, err := net.SplitHostPort(rec.Client)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("audit line for %s: client %q, want 127.0.0.1:<port>", rec.Repository, rec.Client)
		}
		if !fps[rec.Token] {
			t.Errorf("audit line for %s: token %q… is not the fingerprint of either client's token", rec.Repository, shorten(rec.Token))
		}
		if rec.DryRun || rec.Template != "team" {
			t.Errorf("audit line for %s: dry_run %v, template %q", rec.Repository, rec.DryRun, rec.Template)
		}
	}
	for r := range repos {
		if repo := fmt.Sprintf("team/app-%02d", r); seen[repo] != 1 {
			t.Errorf("audit lines for %s: %d, want 1", repo, seen[repo])
		}
	}
	// And in the replicas' logs: one "created repository" line per repository in all.
	created := 0
	for _, rep := range replicas {
		b, _ := os.ReadFile(rep.logPath)
		created += strings.Count(string(b), "msg=\"created repository\"")
	}
	if created != repos {
		t.Errorf("\"created repository\" log lines across the replicas = %d, want %d", created, repos)
	}
}

// checkTeamRepository checks that repo has the team template's settings.
func checkTeamRepository(t *testing.T, api *ecr.Client, repo string) {
	t.Helper()
	ctx := context.Background()
	d, err := api.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{repo}})
	if err != nil || len(d.Repositories) != 1 {
		t.Errorf("DescribeRepositories %s: %v", repo, err)
		return
	}
	r := d.Repositories[0]
	if r.ImageTagMutability != "IMMUTABLE" || r.ImageScanningConfiguration == nil || !r.ImageScanningConfiguration.ScanOnPush {
		t.Errorf("%s: tag mutability %s, scanning %+v; want IMMUTABLE, scan on push", repo, r.ImageTagMutability, r.ImageScanningConfiguration)
	}
	lp, err := api.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{RepositoryName: aws.String(repo)})
	if err != nil {
		t.Errorf("GetLifecyclePolicy %s: %v", repo, err)
	} else if !sameJSON(aws.ToString(lp.LifecyclePolicyText), teamLifecyclePolicy) {
		t.Errorf("%s: lifecycle policy %s", repo, aws.ToString(lp.LifecyclePolicyText))
	}
	rp, err := api.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: r.RepositoryName})
	if err != nil {
		t.Errorf("GetRepositoryPolicy %s: %v", repo, err)
	} else if !sameJSON(aws.ToString(rp.PolicyText), teamRepoPolicy) {
		t.Errorf("%s: repository policy %s", repo, aws.ToString(rp.PolicyText))
	}
	tags, err := api.ListTagsForResource(ctx, &ecr.ListTagsForResourceInput{ResourceArn: r.RepositoryArn})
	if err != nil {
		t.Errorf("ListTagsForResource %s: %v", repo, err)
		return
	}
	got := map[string]string{}
	for _, tg := range tags.Tags {
		got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if want := map[string]string{"team": "platform", "cost-center": "42"}; !reflect.DeepEqual(got, want) {
		t.Errorf("%s: tags %v, want %v", repo, got, want)
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// --- 2. clients without a good token, from another network namespace ------

// teamClientEnv makes the e2e test binary a small registry client (see
// init): the test runs it inside a network namespace with
// `ip netns exec`, so that its connections come from another address.
const teamClientEnv = "ECRGATE_E2E_TEAM_CLIENT"

func init() {
	if spec := os.Getenv(teamClientEnv); spec != "" {
		os.Exit(teamClientMain(spec))
	}
}

// teamAttemptSpec is one attempt of a client.
type teamAttemptSpec struct {
	// Mode is "push" (go-containerregistry's remote.Write of a small
	// image), "post" (the request that starts a blob upload, the first
	// one that makes ecrgate create a repository) or "ping" (GET /v2/).
	Mode string
	// Addr is the replica's host:port; Repo the repository.
	Addr, Repo string
	// CAFile is the test CA's certificate.
	CAFile string
	// TokenFile holds the ECR password ("" for no Authorization).
	TokenFile string
}

// teamAttemptResult is what the attempt saw.
type teamAttemptResult struct {
	Status    int    // HTTP status of the failure (or of the POST); 0 for a push that succeeded
	Code      string // the registry error code, if any
	Challenge string // WWW-Authenticate of a 401
	Err       string // the error, "" if the push succeeded
}

func teamClientMain(spec string) int {
	var s teamAttemptSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	res := teamAttempt(context.Background(), s)
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func teamAttempt(ctx context.Context, s teamAttemptSpec) teamAttemptResult {
	fail := func(err error) teamAttemptResult { return teamAttemptResult{Err: err.Error()} }
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	var password string
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return fail(err)
		}
		password = string(b)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	switch s.Mode {
	case "push":
		ref, err := name.ParseReference(s.Addr + "/" + s.Repo + ":1")
		if err != nil {
			return fail(err)
		}
		img, err := random.Image(2048, 1)
		if err != nil {
			return fail(err)
		}
		auth := authn.Anonymous
		if password != "" {
			auth = &authn.Basic{Username: "AWS", Password: password}
		}
		err = remote.Write(ref, img, remote.WithAuth(auth), remote.WithTransport(tr), remote.WithContext(ctx),
			remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
		if err == nil {
			return teamAttemptResult{}
		}
		res := teamAttemptResult{Err: err.Error()}
		var terr *transport.Error
		if errors.As(err, &terr) {
			res.Status = terr.StatusCode
			if len(terr.Errors) > 0 {
				res.Code = string(terr.Errors[0].Code)
			}
		}
		return res
	case "post", "ping":
		method, path := http.MethodPost, "/v2/"+s.Repo+"/blobs/uploads/"
		if s.Mode == "ping" {
			method, path = http.MethodGet, "/v2/"
		}
		req, err := http.NewRequestWithContext(ctx, method, "https://"+s.Addr+path, nil)
		if err != nil {
			return fail(err)
		}
		if password != "" {
			req.SetBasicAuth("AWS", password)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fail(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		res := teamAttemptResult{Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate")}
		var e struct{ Errors []struct{ Code string } }
		if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
			res.Code = e.Errors[0].Code
		}
		if resp.StatusCode >= 300 {
			res.Err = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return res
	}
	return fail(fmt.Errorf("unknown mode %q", s.Mode))
}

// teamNetns is a network namespace with one end of a veth pair; the other
// end is in the test's namespace. Both ends have addresses of a /30.
type teamNetns struct {
	name           string
	hostIP, nsIP   net.IP
	hostIf, nsPeer string
}

// makeTeamNetns creates a network namespace and a veth pair for this test
// only (their names are random), and removes both at cleanup, also when
// the test fails half-way.
func makeTeamNetns(t *testing.T) *teamNetns {
	t.Helper()
	requireTools(t, "ip")
	id := fmt.Sprintf("%04x", mrand.IntN(1<<16))
	addrs, _ := net.InterfaceAddrs()
	var third int
	for range 50 {
		third = 64 + mrand.IntN(190)
		prefix := fmt.Sprintf("10.233.%d.", third)
		taken := false
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), prefix) {
				taken = true
			}
		}
		if !taken {
			break
		}
	}
	n := &teamNetns{name: "ecrgate-e2e-" + id, hostIf: "egh" + id, nsPeer: "egn" + id,
		hostIP: net.IPv4(10, 233, byte(third), 1), nsIP: net.IPv4(10, 233, byte(third), 2)}
	ip := func(args ...string) {
		t.Helper()
		mustRun(t, nil, "ip", args...)
	}
	ip("netns", "add", n.name)
	t.Cleanup(func() {
		if out, err := runCmd(t, nil, "ip", "netns", "delete", n.name); err != nil {
			t.Errorf("remove network namespace: %v\n%s", err, out)
		}
	})
	ip("link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsPeer)
	t.Cleanup(func() {
		// Deleting one end removes both; the namespace's end may be gone
		// with the namespace already.
		if _, err := net.InterfaceByName(n.hostIf); err == nil {
			if out, err := runCmd(t, nil, "ip", "link", "delete", n.hostIf); err != nil {
				t.Errorf("remove veth: %v\n%s", err, out)
			}
		}
	})
	ip("link", "set", n.nsPeer, "netns", n.name)
	ip("addr", "add", n.hostIP.String()+"/30", "dev", n.hostIf)
	ip("link", "set", n.hostIf, "up")
	ip("netns", "exec", n.name, "ip", "addr", "add", n.nsIP.String()+"/30", "dev", n.nsPeer)
	ip("netns", "exec", n.name, "ip", "link", "set", n.nsPeer, "up")
	ip("netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// attempt runs s in the namespace, with this test binary as the client.
func (n *teamNetns) attempt(t *testing.T, s teamAttemptSpec) teamAttemptResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(s)
	out, err := runCmdStdout(t, []string{teamClientEnv + "=" + string(spec)}, "ip", "netns", "exec", n.name, exe)
	if err != nil {
		t.Fatalf("client in %s: %v\n%s", n.name, err, out)
	}
	var res teamAttemptResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("client in %s: decode %q: %v", n.name, out, err)
	}
	return res
}

// TestTeamRemoteClients: one replica listens on the host's end of a veth
// pair, another on loopback. From a network namespace (the other end of
// the pair) and from loopback, a client without a token, with a bogus one
// and with a valid token of another account tries to push to a new
// repository and to start a blob upload (the request that makes ecrgate
// create a repository): 401 with ECR's Basic challenge, 401, and refused;
// nothing is created. A client with its own good token pushes from either
// place (the paths work), and only its repositories are created and
// audited, with its address.
func TestTeamRemoteClients(t *testing.T) {
	binDir(t)
	requireTools(t, "ip")
	ns := makeTeamNetns(t)
	te := startTeamEmulator(t)
	pki := newTeamPKI(t)
	own := te.token(t, te.AccessKey(), te.SecretKey())
	other := te.token(t, otherUserKey, otherUserSecret)
	bogus := bogusToken()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	certPEM, keyPEM, _ := pki.issue(t, net.IPv4(127, 0, 0, 1), ns.hostIP)
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	remoteRep := startTeamReplica(t, te, "replica-veth", ns.hostIP.String(), certFile, keyFile, audit, own, other, bogus)
	localRep := startTeamReplica(t, te, "replica-loopback", "127.0.0.1", certFile, keyFile, audit, own, other, bogus)

	tokenDir := t.TempDir()
	tokenFile := func(tok teamToken) string {
		if tok.password == "" {
			return ""
		}
		f, err := os.CreateTemp(tokenDir, "token")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(tok.password); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}

	type where struct {
		name    string
		addr    string
		attempt func(*testing.T, teamAttemptSpec) teamAttemptResult
		client  string // the client's address as ecrgate sees it
	}
	places := []where{
		{"netns", remoteRep.addr, func(t *testing.T, s teamAttemptSpec) teamAttemptResult { return ns.attempt(t, s) }, ns.nsIP.String()},
		{"loopback", localRep.addr, func(_ *testing.T, s teamAttemptSpec) teamAttemptResult { return teamAttempt(context.Background(), s) }, "127.0.0.1"},
	}
	refusals := []struct {
		name       string
		tok        teamToken
		pushStatus []int // acceptable statuses of the failed push
		pingStatus int
		postStatus int
		postCode   string
		challenge  bool
	}{
		{"no-token", teamToken{}, []int{http.StatusUnauthorized}, http.StatusUnauthorized, http.StatusUnauthorized, "UNAUTHORIZED", true},
		{"bogus-token", bogus, []int{http.StatusUnauthorized}, http.StatusUnauthorized, http.StatusUnauthorized, "UNAUTHORIZED", true},
		// Another account's token opens nothing in this registry but
		// GET /v2/ (a token is not bound to a registry): ECR answers 403
		// to its push, ecrgate refuses to create for it.
		{"other-account", other, []int{http.StatusForbidden}, http.StatusOK, http.StatusForbidden, "DENIED", false},
	}
	var refused []string
	for _, pl := range places {
		for _, rc := range refusals {
			t.Run(pl.name+"/"+rc.name, func(t *testing.T) {
				tf := tokenFile(rc.tok)
				for _, mode := range []string{"ping", "push", "post"} {
					repo := fmt.Sprintf("team/refused-%s-%s-%s", pl.name, rc.name, mode)
					refused = append(refused, repo)
					res := pl.attempt(t, teamAttemptSpec{Mode: mode, Addr: pl.addr, Repo: repo, CAFile: pki.caFile, TokenFile: tf})
					t.Logf("%s %s: %+v", mode, repo, res)
					switch mode {
					case "ping":
						// ecrgate answers nothing itself: ECR's own answer,
						// its Basic challenge without credentials.
						if res.Status != rc.pingStatus {
							t.Errorf("GET /v2/: %d, want %d (%s)", res.Status, rc.pingStatus, res.Err)
						}
						if rc.challenge && !strings.HasPrefix(res.Challenge, `Basic realm="https://`+teamAccount+`.dkr.ecr.`) {
							t.Errorf("GET /v2/ without a good token: WWW-Authenticate %q, want ECR's Basic challenge", res.Challenge)
						}
					case "push":
						if res.Err == "" {
							t.Errorf("push to %s succeeded", repo)
						} else if !containsInt(rc.pushStatus, res.Status) {
							t.Errorf("push to %s failed with status %d (%s), want one of %v", repo, res.Status, res.Err, rc.pushStatus)
						}
					case "post":
						if res.Status != rc.postStatus || res.Code != rc.postCode {
							t.Errorf("POST /v2/%s/blobs/uploads/: %d %s, want %d %s (%s)", repo, res.Status, res.Code, rc.postStatus, rc.postCode, res.Err)
						}
						if rc.challenge && !strings.HasPrefix(res.Challenge, `Basic realm="https://`+teamAccount+`.dkr.ecr.`) {
							t.Errorf("401 without ECR's Basic challenge: WWW-Authenticate %q", res.Challenge)
						}
					}
					if _, ok := te.Repository("", repo); ok {
						t.Errorf("%s was created", repo)
					}
				}
			})
		}
	}
	if n := te.Calls("CreateRepository"); n != 0 {
		t.Errorf("CreateRepository called %d times for clients without a good token", n)
	}
	if recs, raw := readAudit(t, audit); len(recs) != 0 {
		t.Errorf("audit lines for refused clients:\n%s", raw)
	}

	// The same paths with the client's own token: the push goes through
	// and creates its repository, audited with the client's address.
	ownFile := tokenFile(own)
	for _, pl := range places {
		repo := "team/accepted-" + pl.name
		res := pl.attempt(t, teamAttemptSpec{Mode: "push", Addr: pl.addr, Repo: repo, CAFile: pki.caFile, TokenFile: ownFile})
		if res.Err != "" {
			t.Errorf("%s: push with the client's own token: %+v", pl.name, res)
			continue
		}
		checkTeamRepository(t, te.api(te.AccessKey(), te.SecretKey()), repo)
	}
	recs, raw := readAudit(t, audit)
	if len(recs) != len(places) {
		t.Errorf("audit lines = %d, want %d:\n%s", len(recs), len(places), raw)
	}
	for _, rec := range recs {
		t.Logf("audit: %s created for client %s, token %s", rec.Repository, rec.Client, shorten(rec.Token))
		pl := strings.TrimPrefix(rec.Repository, "team/accepted-")
		for _, p := range places {
			host, _, _ := net.SplitHostPort(rec.Client)
			if p.name == pl && (host != p.client || rec.Token != own.fingerprint()) {
				t.Errorf("audit line for %s: client %q token %q…, want %s:<port> and %s", rec.Repository, rec.Client, shorten(rec.Token), p.client, own.fingerprint())
			}
		}
	}
	for _, repo := range refused {
		if _, ok := te.Repository("", repo); ok {
			t.Errorf("%s exists", repo)
		}
	}
	if n := te.succeeded("CreateRepository"); n != len(places) {
		t.Errorf("CreateRepository succeeded %d times, want %d", n, len(places))
	}
}

// shorten keeps a failing test from printing more than the start of what
// might be a token.
func shorten(s string) string { return s[:min(len(s), 16)] }

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// --- 3. certificate rotation -------------------------------------------------

// gatedLayer is a layer whose upload sends the first half, reports that
// it is in flight and waits for resume before sending the rest.
type gatedLayer struct {
	v1.Layer
	body     []byte
	midway   chan struct{}
	resume   chan struct{}
	midOnce  sync.Once
	attempts int
	mu       sync.Mutex
}

func newGatedLayer(size int) *gatedLayer {
	body := make([]byte, size)
	_, _ = rand.Read(body)
	return &gatedLayer{Layer: static.NewLayer(body, types.DockerLayer), body: body,
		midway: make(chan struct{}), resume: make(chan struct{})}
}

func (l *gatedLayer) Compressed() (io.ReadCloser, error) {
	l.mu.Lock()
	l.attempts++
	l.mu.Unlock()
	half := len(l.body) / 2
	first := bytes.NewReader(l.body[:half])
	rest := bytes.NewReader(l.body[half:])
	return io.NopCloser(io.MultiReader(first, readerFunc(func(p []byte) (int, error) {
		l.midOnce.Do(func() { close(l.midway) })
		<-l.resume
		return rest.Read(p)
	}))), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestTeamCertRotation: a replica's certificate files are replaced while a
// push is in flight, by renaming a new pair over them and by the kubelet's
// swap of the ..data symbolic link of a Secret volume. New TLS connections
// get the new certificate (its serial number) and the push, held half-way
// through a layer on its connection, finishes.
func TestTeamCertRotation(t *testing.T) {
	binDir(t)
	for _, how := range []string{"rename", "kubernetes-symlink"} {
		t.Run(how, func(t *testing.T) {
			te := startTeamEmulator(t)
			pki := newTeamPKI(t)
			tok := te.token(t, te.AccessKey(), te.SecretKey())
			cert1, key1, serial1 := pki.issue(t, net.IPv4(127, 0, 0, 1))
			cert2, key2, serial2 := pki.issue(t, net.IPv4(127, 0, 0, 1))
			dir := t.TempDir()
			var certFile, keyFile string
			var rotate func()
			switch how {
			case "rename":
				certFile, keyFile = writePair(t, dir, cert1, key1)
				rotate = func() {
					// The new pair is written beside the old one, then
					// renamed over it, key first.
					tc, tk := filepath.Join(dir, ".tls.crt.new"), filepath.Join(dir, ".tls.key.new")
					if err := os.WriteFile(tc, cert2, 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(tk, key2, 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tk, keyFile); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tc, certFile); err != nil {
						t.Fatal(err)
					}
				}
			case "kubernetes-symlink":
				// The layout of a Secret volume: tls.crt -> ..data/tls.crt,
				// ..data -> ..<timestamp>/; an update writes a new
				// timestamped directory and renames a new ..data link over
				// the old one.
				writeTS := func(name string, c, k []byte) {
					if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
						t.Fatal(err)
					}
					writePair(t, filepath.Join(dir, name), c, k)
				}
				writeTS("..2026_12_04_00_00_00.000000001", cert1, key1)
				if err := os.Symlink("..2026_12_04_00_00_00.000000001", filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{"tls.crt", "tls.key"} {
					if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
						t.Fatal(err)
					}
				}
				certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
				rotate = func() {
					writeTS("..2026_12_04_01_00_00.000000002", cert2, key2)
					if err := os.Symlink("..2026_12_04_01_00_00.000000002", filepath.Join(dir, "..data_tmp")); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
						t.Fatal(err)
					}
					if err := os.RemoveAll(filepath.Join(dir, "..2026_12_04_00_00_00.000000001")); err != nil {
						t.Fatal(err)
					}
				}
			}
			rep := startTeamReplica(t, te, "replica-"+how, "127.0.0.1", certFile, keyFile, filepath.Join(t.TempDir(), "audit.jsonl"), tok)
			addr := rep.addr
			if s, err := pki.serialAt(addr); err != nil || s.Cmp(serial1) != 0 {
				t.Fatalf("before the rotation: serial %v (%v), want %v", s, err, serial1)
			}

			// The push: config and a 4 MiB layer, the layer held half-way.
			layer := newGatedLayer(4 << 20)
			img, err := mutate.AppendLayers(empty.Image, layer)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(fmt.Sprintf("%s:%s/team/rotation-%s:1", teamHostName, rep.port(), how))
			if err != nil {
				t.Fatal(err)
			}
			var hsMu sync.Mutex
			var handshakes []*big.Int // serials the push's connections saw
			tr := pki.clientTransport()
			tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
				hsMu.Lock()
				handshakes = append(handshakes, cs.PeerCertificates[0].SerialNumber)
				hsMu.Unlock()
				return nil
			}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			pushed := make(chan error, 1)
			go func() {
				pushed <- remote.Write(ref, img, remote.WithAuth(tok.auth()), remote.WithTransport(tr), remote.WithContext(ctx))
			}()
			select {
			case <-layer.midway:
			case err := <-pushed:
				t.Fatalf("push ended before its layer was half-way: %v", err)
			case <-ctx.Done():
				t.Fatal("the push's layer upload did not start")
			}

			rotated := time.Now()
			rotate()
			var got *big.Int
			attempts := 0
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				attempts++
				s, err := pki.serialAt(addr)
				if err != nil {
					t.Logf("handshake after the rotation: %v", err)
					continue
				}
				if got = s; got.Cmp(serial2) == 0 {
					break
				}
			}
			if got == nil || got.Cmp(serial2) != 0 {
				t.Errorf("new connections after the rotation: serial %v, want the new %v (old %v)", got, serial2, serial1)
			} else {
				t.Logf("a new connection saw the new certificate %s after the files changed (%d handshakes)", time.Since(rotated).Round(time.Millisecond), attempts)
			}
			select {
			case err := <-pushed:
				t.Fatalf("the push ended while its layer was held: %v", err)
			default:
			}

			close(layer.resume)
			select {
			case err := <-pushed:
				if err != nil {
					t.Fatalf("the push in flight during the rotation: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("the push in flight did not finish")
			}
			if layer.attempts != 1 {
				t.Errorf("the layer was sent %d times; the push in flight should have finished on its first attempt", layer.attempts)
			}
			hsMu.Lock()
			if len(handshakes) == 0 || handshakes[0].Cmp(serial1) != 0 {
				t.Errorf("the push's first connection saw serial %v, want the old %v", handshakes, serial1)
			}
			hsMu.Unlock()
			want, _ := img.Digest()
			d, err := remote.Head(ref, remote.WithAuth(tok.auth()), remote.WithTransport(pki.clientTransport()))
			if err != nil || d.Digest != want {
				t.Errorf("after the push: %v %v, want %s", d, err, want)
			}
		})
	}
}
