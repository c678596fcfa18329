// Package ecrfake is an in-process Amazon ECR emulator for tests, benchmarks
// and the offline demo.
//
// One http.Handler serves, on one listener:
//   - the ECR control plane (AWS JSON 1.1, SigV4-verified), including
//     repository creation templates, and ECR Public's GetAuthorizationToken;
//   - the registry (data plane), a real OCI registry built on
//     distribution/v3 with ECR's behaviour in front of it: Basic auth with
//     tokens from GetAuthorizationToken, NAME_UNKNOWN for repositories that were
//     not created, CREATE_ON_PUSH templates, immutable tags, the 4 MiB manifest
//     limit, the OCI 1.1 referrers API (which distribution lacks); the account
//     is chosen by the Host header;
//   - STS (AssumeRole, AssumeRoleWithWebIdentity, GetCallerIdentity) and the
//     SSO portal's GetRoleCredentials, so every credential source of the AWS
//     SDK can resolve against it;
//   - fault injection and call counts, in process and under /_ecrfake/;
//   - lifecycle policies that run: previews evaluate them, and
//     ApplyLifecyclePolicies (POST /_ecrfake/lifecycle) expires images as
//     ECR's lifecycle run would.
//
// Clients reach it the way they reach AWS through an endpoint override:
// AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_SSO (see Env).
// The package does not import "testing"; Start takes the small TB interface.
package ecrfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/respwriter"
)

// Defaults of the emulator. The key pair is the emulator's own, never a real one.
const (
	DefaultAccount   = "123456789012"
	DefaultRegion    = "us-east-1"
	DefaultAccessKey = "AKIAECRFAKE000000001"
	DefaultSecretKey = "ecrfake/secret/key/not/a/real/one/0000"
	// DefaultTokenLifetime is how long GetAuthorizationToken tokens live, as in ECR.
	DefaultTokenLifetime = 12 * time.Hour
	// MaxManifestSize is ECR's manifest size limit.
	MaxManifestSize = 4 << 20
	// DefaultMaxRepositories is ECR's default repositories-per-registry quota.
	DefaultMaxRepositories = 100000
)

// User is an additional IAM user the emulator accepts.
type User struct {
	Name      string
	Account   string // default: the first account
	AccessKey string
	SecretKey string
}

// Options configure an Emulator. The zero value is a usable single-account
// in-memory emulator in us-east-1.
type Options struct {
	// Accounts are the registry ids served; the first is the default (used
	// for requests whose Host is not an ECR host name, e.g. 127.0.0.1:port).
	Accounts []string
	// Region is the default region.
	Region string
	// AccessKey and SecretKey are the static credentials of the default
	// account's user "ecrfake".
	AccessKey, SecretKey string
	// Users are more IAM users, e.g. one per account.
	Users []User
	// StorageDir keeps images and the control-plane state on disk; empty keeps
	// everything in memory.
	StorageDir string
	// TokenLifetime of GetAuthorizationToken tokens (default 12h).
	TokenLifetime time.Duration
	// CredentialLifetime of STS and SSO temporary credentials (default 1h).
	CredentialLifetime time.Duration
	// MaxRepositories per registry before CreateRepository answers
	// LimitExceededException (default 100000, ECR's quota).
	MaxRepositories int
	// SSOTokens, if set, are the only SSO access tokens GetRoleCredentials
	// accepts; otherwise any non-empty token is accepted.
	SSOTokens []string
	// Latency delays every call, to model a real AWS round trip.
	Latency time.Duration
	// Now is the clock (default time.Now), for token-expiry tests.
	Now func() time.Time
	// Logger receives one debug line per request (default: discard).
	Logger *slog.Logger
	// BlobRedirect answers blob downloads with a 307 to a presigned URL on
	// the emulator's own "S3" listener (another loopback port), as ECR
	// redirects to S3; see S3Requests.
	BlobRedirect bool
	// UploadBandwidth, if positive, limits the bytes per second the
	// registry's upload handlers read, all uploads together, as a
	// pusher's internet uplink would (see SetUploadBandwidth, UploadBytes).
	UploadBandwidth int64
}

// Emulator is an ECR emulator; it is an http.Handler.
type Emulator struct {
	opts   Options
	log    *slog.Logger
	st     *state
	faults *faults
	data   *dataPlane

	denyMu sync.Mutex
	deny   map[string]map[string]bool // principal ARN -> action -> denied

	urlMu sync.Mutex
	url   string

	s3 *s3Server // with Options.BlobRedirect, once serving

	uploads sync.Map // InitiateLayerUpload sessions: uploadId -> *layerUpload
}

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

// New returns an emulator. Close it when done.
func New(opts Options) (*Emulator, error) {
	if len(opts.Accounts) == 0 {
		opts.Accounts = []string{DefaultAccount}
	}
	for _, a := range opts.Accounts {
		if !accountRE.MatchString(a) {
			return nil, fmt.Errorf("account %q must be 12 digits", a)
		}
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if _, err := ecrhost.Parse(opts.Accounts[0] + ".dkr.ecr." + opts.Region + ".amazonaws.com"); err != nil {
		return nil, fmt.Errorf("region %q: %w", opts.Region, err)
	}
	if opts.AccessKey == "" && opts.SecretKey == "" {
		opts.AccessKey, opts.SecretKey = DefaultAccessKey, DefaultSecretKey
	}
	if opts.AccessKey == "" || opts.SecretKey == "" {
		return nil, errors.New("access key and secret key must be given together")
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.CredentialLifetime <= 0 {
		opts.CredentialLifetime = time.Hour
	}
	if opts.MaxRepositories <= 0 {
		opts.MaxRepositories = DefaultMaxRepositories
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	statePath := ""
	if opts.StorageDir != "" {
		if err := os.MkdirAll(opts.StorageDir, 0o700); err != nil {
			return nil, fmt.Errorf("create emulator storage: %w", err)
		}
		statePath = filepath.Join(opts.StorageDir, "ecrfake-state.json")
	}
	st, err := loadState(statePath)
	if err != nil {
		return nil, err
	}
	e := &Emulator{opts: opts, log: log, st: st, faults: newFaults(), deny: map[string]map[string]bool{}}
	e.faults.latency = opts.Latency
	e.st.mu.Lock()
	for _, a := range opts.Accounts {
		e.st.registry(a, opts.Region)
	}
	e.st.Creds[opts.AccessKey] = &credential{Secret: opts.SecretKey, Account: opts.Accounts[0],
		ARN: "arn:aws:iam::" + opts.Accounts[0] + ":user/ecrfake"}
	for _, u := range opts.Users {
		acct := u.Account
		if acct == "" {
			acct = opts.Accounts[0]
		}
		if u.AccessKey == "" || u.SecretKey == "" || u.Name == "" {
			e.st.mu.Unlock()
			return nil, fmt.Errorf("user %q: name, access key and secret key are required", u.Name)
		}
		e.st.Creds[u.AccessKey] = &credential{Secret: u.SecretKey, Account: acct, ARN: "arn:aws:iam::" + acct + ":user/" + u.Name}
	}
	e.st.mu.Unlock()
	e.data = newDataPlane(e)
	e.data.link.setRate(opts.UploadBandwidth)
	return e, nil
}

// Close releases the registries' resources.
func (e *Emulator) Close() error { return e.data.close() }

// Account is the default account; Region the default region.
func (e *Emulator) Account() string { return e.opts.Accounts[0] }

// Region is the default region.
func (e *Emulator) Region() string { return e.opts.Region }

// AccessKey and SecretKey of the default user.
func (e *Emulator) AccessKey() string { return e.opts.AccessKey }

// SecretKey of the default user.
func (e *Emulator) SecretKey() string { return e.opts.SecretKey }

// URL is the emulator's base URL once it serves (Start or Serve), e.g. http://127.0.0.1:41234.
func (e *Emulator) URL() string {
	e.urlMu.Lock()
	defer e.urlMu.Unlock()
	return e.url
}

// Host is URL without the scheme: the registry host to push to.
func (e *Emulator) Host() string { return strings.TrimPrefix(e.URL(), "http://") }

// Env is the environment a client needs to use the emulator as its AWS:
// endpoints, the default user's keys, the region, and no instance metadata.
func (e *Emulator) Env() []string {
	u := e.URL()
	return []string{
		"AWS_ENDPOINT_URL_ECR=" + u,
		"AWS_ENDPOINT_URL_ECR_PUBLIC=" + u,
		"AWS_ENDPOINT_URL_STS=" + u,
		"AWS_ENDPOINT_URL_SSO=" + u,
		"AWS_ACCESS_KEY_ID=" + e.opts.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + e.opts.SecretKey,
		"AWS_REGION=" + e.opts.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Start runs a new emulator on 127.0.0.1 for the life of the test.
func Start(tb TB, opts Options) *Emulator {
	tb.Helper()
	e, err := New(opts)
	if err != nil {
		tb.Fatalf("ecrfake: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("ecrfake: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e.bind(ln)
	go func() { done <- e.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Fatalf("ecrfake: serve: %v", err)
		}
	})
	return e
}

func (e *Emulator) bind(ln net.Listener) {
	e.urlMu.Lock()
	e.url = "http://" + ln.Addr().String()
	e.urlMu.Unlock()
}

// Serve serves on ln until ctx is done, then shuts down (letting in-flight
// requests finish for up to 10 seconds) and closes the emulator.
func (e *Emulator) Serve(ctx context.Context, ln net.Listener) error {
	e.bind(ln)
	if e.opts.BlobRedirect {
		if err := e.startS3(ctx); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		e.Close()
		return fmt.Errorf("serve emulator: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// A client that keeps a connection open (or a loaded machine) must
		// not make a test fail on the emulator's way out: close the rest.
		e.log.Warn("emulator shutdown: closing connections that did not finish", "err", err)
		_ = srv.Close()
	}
	return e.Close()
}

// ServeHTTP routes a request to the plane it belongs to.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := respwriter.New(w)
	defer func() {
		e.log.Debug("request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "status", rw.Status(), "duration", time.Since(start))
	}()
	switch {
	case r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/"):
		e.data.serve(rw, r)
	case strings.HasPrefix(r.URL.Path, adminPrefix):
		e.serveAdmin(rw, r)
	case r.URL.Path == "/federation/credentials":
		e.serveSSO(rw, r)
	case r.Header.Get("X-Amz-Target") != "":
		e.serveJSON(rw, r)
	case r.URL.Path == "/" && (r.Method == http.MethodPost || r.URL.Query().Get("Action") != ""):
		e.serveSTS(rw, r)
	default:
		http.NotFound(rw, r)
	}
}

// ExpireTokens makes every token issued so far expired.
func (e *Emulator) ExpireTokens() {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	past := e.opts.Now().Add(-time.Second)
	for _, t := range e.st.Tokens {
		t.Expires = past
	}
	if err := e.st.save(); err != nil {
		e.log.Warn("emulator state not saved", "err", err)
	}
}

// DenyAction makes action (e.g. "ecr:GetAuthorizationToken") fail with
// AccessDenied for principal: a user ARN (arn:aws:iam::123456789012:user/x)
// or a role ARN (arn:aws:iam::123456789012:role/r, covering its sessions).
func (e *Emulator) DenyAction(principal, action string) {
	e.denyMu.Lock()
	defer e.denyMu.Unlock()
	if e.deny[principal] == nil {
		e.deny[principal] = map[string]bool{}
	}
	e.deny[principal][action] = true
}

func (e *Emulator) denied(c *credential, action string) bool {
	e.denyMu.Lock()
	defer e.denyMu.Unlock()
	return e.deny[c.ARN][action] || (c.RoleARN != "" && e.deny[c.RoleARN][action])
}

// RepositoryInfo is a snapshot of a repository's settings, for tests.
type RepositoryInfo struct {
	Account, Region, Name string
	TagMutability         string
	ExclusionFilters      []string // WILDCARD filters
	ScanOnPush            bool
	EncryptionType        string
	KMSKey                string
	Tags                  map[string]string
	LifecyclePolicy       string
	RepositoryPolicy      string
	// CreatedBy is "api" or "create-on-push:<template prefix>".
	CreatedBy string
}

// Repository returns the settings of a repository in the default region of
// account ("" = the default account).
func (e *Emulator) Repository(account, name string) (RepositoryInfo, bool) {
	if account == "" {
		account = e.Account()
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	reg := e.st.Registries[registryKey(account, e.opts.Region)]
	if reg == nil || reg.Repositories[name] == nil {
		return RepositoryInfo{}, false
	}
	r := reg.Repositories[name]
	info := RepositoryInfo{Account: account, Region: e.opts.Region, Name: r.Name, TagMutability: r.TagMutability,
		ScanOnPush: r.ScanOnPush, EncryptionType: r.Encryption.EncryptionType, KMSKey: r.Encryption.KMSKey,
		Tags: map[string]string{}, LifecyclePolicy: r.LifecyclePolicy, RepositoryPolicy: r.Policy, CreatedBy: r.CreatedBy}
	for _, f := range r.ExclusionFilters {
		info.ExclusionFilters = append(info.ExclusionFilters, f.Filter)
	}
	for _, t := range r.Tags {
		info.Tags[t.Key] = t.Value
	}
	return info, true
}

// Repositories lists the repository names of account ("" = default) in the default region.
func (e *Emulator) Repositories(account string) []string {
	if account == "" {
		account = e.Account()
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	reg := e.st.Registries[registryKey(account, e.opts.Region)]
	if reg == nil {
		return nil
	}
	return reg.sortedRepoNames()
}

func (e *Emulator) knownAccount(a string) bool {
	for _, x := range e.opts.Accounts {
		if x == a {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // documented never to fail since Go 1.24
	return hex.EncodeToString(b)
}

// Accounts are the registry ids the emulator serves; the first is the default.
func (e *Emulator) Accounts() []string { return append([]string(nil), e.opts.Accounts...) }
