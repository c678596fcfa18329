package server_test

// Issue 12, item 1: `ecrgate explain` answers what `ecrgate serve` does.
// The same generated requests go to a real server (server.Run, its
// registry and intercept listeners, in front of an upstream that records
// where each request went) and to explain.Explain; both must name the same
// registry and repository, or both refuse.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/explain"
	"github.com/ecrgate/ecrgate/pkg/localca"
	"github.com/ecrgate/ecrgate/pkg/server"
)

// The registries of the agreement config: A is default_registry, B takes
// prod/ and is under registries:, C takes prod/eu/; D is an ECR host the
// config does not name.
const (
	agreeA = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	agreeB = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
	agreeC = "333333333333.dkr.ecr.us-west-2.amazonaws.com"
	agreeD = "999999999999.dkr.ecr.us-east-1.amazonaws.com"
)

// Pools the generator draws from.
var (
	// Hosts clients name the registry-mode listener by (the Host header,
	// the image name's host); all of them reach it.
	agreeLocalHosts = []string{"localhost:5000", "127.0.0.1:5000", "LOCALHOST:5000", "[::1]:5000", "registry.localhost:5000", "devbox:5000", "localhost"}
	// Hosts dockerd CONNECTs to in intercept mode.
	agreeInterceptHosts = []string{agreeA, agreeB, agreeC, strings.ToUpper(agreeB), agreeD}
	agreeNS             = []string{"", "", "", agreeA, agreeB, strings.ToUpper(agreeC) + ":443", agreeD, "docker.io", "localhost:5000", "devbox:5000"}
	agreeParts          = []string{"team", "app", "prod", "eu", "x", "Team", "a.b", "a_b", "a-b", "..", "",
		agreeA, agreeB, agreeC, agreeD, strings.ToUpper(agreeB), "dkr.ecr.example"}
)

// agreeRequest is one generated request.
type agreeRequest struct {
	intercept bool
	host      string // Host (registry mode) or CONNECT host (intercept)
	ns        string // ?ns= ("" for none)
	name      string // repository name as the client writes it
}

func (r agreeRequest) String() string {
	l := "registry"
	if r.intercept {
		l = "intercept"
	}
	return fmt.Sprintf("%s listener, host %q, ns %q, name %q", l, r.host, r.ns, r.name)
}

// outcome is where a request went: a registry and repository, or a refusal.
type outcome struct {
	registry, repository string
	refused              string // "" when it went upstream; else the error code, or "CONNECT" when not decrypted
	message              string
}

func (o outcome) String() string {
	if o.refused != "" {
		return fmt.Sprintf("refused %s (%s)", o.refused, o.message)
	}
	return o.registry + " " + o.repository
}

// recorder is the upstream: it answers every request with an empty tag
// list and remembers where the last one went.
type recorder struct {
	mu   sync.Mutex
	last []string // Host, path
}

func (u *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.last = []string{r.Host, r.URL.Path}
	u.mu.Unlock()
	const body = `{"name":"x","tags":[]}`
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Content-Type": {"application/json"}, "Docker-Distribution-Api-Version": {"registry/2.0"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}, nil
}

func (u *recorder) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.last
	u.last = nil
	return l
}

// agreement is a running server and the config explain reads.
type agreement struct {
	cfg    *config.Config
	proxy  string
	up     *recorder
	client *http.Client

	mu       sync.Mutex
	outcomes map[string]int // serve's outcomes by kind: a registry, or a refusal code
}

func (a *agreement) seen(o outcome) {
	k := o.refused
	if k == "" {
		k = o.registry
	}
	a.mu.Lock()
	a.outcomes[k]++
	a.mu.Unlock()
}

func startAgreement(t testing.TB) *agreement {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{Accounts: []string{"123456789012", "222222222222", "333333333333"}})
	home := t.TempDir()
	env := append(e.Env(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"AWS_CONFIG_FILE="+filepath.Join(home, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "aws-credentials"))
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, err := localca.Init(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ecrgate.yaml")
	yaml := fmt.Sprintf(`default_registry: %s
audit_log: %s
routes:
  - prefix: prod/
    registry: %s
  - prefix: prod/eu/
    registry: %s
registries:
  - host: %s
local_hosts:
  devbox: %s
intercept:
  tunnel_others: false
`, agreeA, filepath.Join(dir, "audit.jsonl"), agreeB, agreeC, agreeB, agreeA)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	given := map[string]net.Listener{}
	for _, n := range []string{"registry", "admin", "intercept"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		given[n] = ln
	}
	a := &agreement{cfg: cfg, proxy: given["registry"].Addr().String(), up: &recorder{}, outcomes: map[string]int{}}
	iaddr := given["intercept"].Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Env: env, Logger: slog.New(slog.DiscardHandler), Listeners: given,
			Transport: a.up, CADir: caDir, ShutdownTimeout: 30 * time.Second, Ready: func(net.Addr, net.Addr) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server.Run ended early: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	tr := &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if r.URL.Scheme == "https" {
				return &url.URL{Scheme: "http", Host: iaddr}, nil
			}
			return nil, nil
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	t.Cleanup(tr.CloseIdleConnections)
	a.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return a
}

// serve sends req to the server (GET /v2/<name>/tags/list, a read) and
// says where it went.
func (a *agreement) serve(t testing.TB, req agreeRequest) outcome {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: a.proxy, Path: "/v2/" + req.name + "/tags/list"}
	if req.intercept {
		u.Scheme, u.Host = "https", req.host
	}
	if req.ns != "" {
		u.RawQuery = url.Values{"ns": {req.ns}}.Encode()
	}
	hr, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	if !req.intercept {
		hr.Host = req.host
	}
	hr.Header.Set("Authorization", "Basic dGVzdDp0ZXN0") // intercept mode forwards the client's own
	a.up.take()
	resp, err := a.client.Do(hr)
	if err != nil {
		if req.intercept && strings.Contains(err.Error(), "Forbidden") {
			return outcome{refused: "CONNECT", message: err.Error()} // tunnel_others: false
		}
		t.Fatalf("%s: %v", req, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		last := a.up.take()
		if last == nil {
			t.Fatalf("%s: 200 without reaching the upstream: %s", req, body)
		}
		repo, ok := strings.CutSuffix(strings.TrimPrefix(last[1], "/v2/"), "/tags/list")
		if !ok {
			t.Fatalf("%s: the upstream got %s", req, last[1])
		}
		return outcome{registry: last[0], repository: repo}
	}
	var errs struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(body, &errs) != nil || len(errs.Errors) == 0 {
		t.Fatalf("%s: %d %s is no registry error", req, resp.StatusCode, body)
	}
	return outcome{refused: errs.Errors[0].Code, message: errs.Errors[0].Message}
}

// explain asks explain.Explain about the same request: the name as the user
// writes it (localhost:5000/<name> or <ECR host>/<name>), with ns.
func (a *agreement) explain(req agreeRequest) (outcome, *explain.Result) {
	r, err := explain.Explain(context.Background(), req.host+"/"+req.name, explain.Options{Config: a.cfg, Offline: true, NS: req.ns})
	switch {
	case err != nil:
		return outcome{refused: "error", message: err.Error()}, nil
	case r.Mode == explain.ModeDirect:
		return outcome{refused: "CONNECT", registry: r.Registry, repository: r.Repository}, r
	case r.Verdict == explain.VerdictInvalid:
		return outcome{refused: "NAME_INVALID", registry: r.Registry, repository: r.Repository, message: r.InvalidReason}, r
	}
	return outcome{registry: r.Registry, repository: r.Repository}, r
}

// check requires serve and explain to agree on req.
func (a *agreement) check(t testing.TB, req agreeRequest) {
	t.Helper()
	s := a.serve(t, req)
	e, r := a.explain(req)
	a.seen(s)
	agree := false
	switch {
	case s.refused == "" || s.refused == "CONNECT" || s.refused == "NAME_INVALID":
		agree = s.refused == e.refused && (s.refused != "" || s.registry == e.registry && s.repository == e.repository)
	case s.refused == "NAME_UNKNOWN" || s.refused == "DENIED":
		// A routing refusal: explain refuses with serve's own words.
		agree = e.refused == "error" && strings.Contains(e.message, s.message)
	}
	if !agree {
		var via string
		if r != nil {
			via = fmt.Sprintf(" (mode %s, via %q)", r.Mode, r.Via)
		}
		t.Errorf("%s:\n\tserve:   %s\n\texplain: %s%s", req, s, e, via)
	}
}

// agreeSeeds are the requests every run checks, issue 12's bug first.
var agreeSeeds = []agreeRequest{
	{host: "localhost:5000", name: agreeB + "/team/app"},
	{host: "localhost:5000", name: "team/app"},
	{host: "localhost:5000", name: "prod/eu/svc"},
	{host: "localhost:5000", name: strings.ToUpper(agreeB) + "/prod/x"},
	{host: "localhost:5000", ns: agreeB, name: agreeA + "/x"},
	{host: "devbox:5000", ns: agreeC, name: "prod/x"},
	{host: "localhost:5000", ns: "docker.io", name: "team/app"},
	{host: "localhost:5000", name: "Team/App"},
	{intercept: true, host: agreeB, name: "prod/svc"},
	{intercept: true, host: agreeD, name: "team/app"},
}

// generate draws a request from the pools.
func generate(rng *rand.Rand) agreeRequest {
	pick := func(pool []string) string { return pool[rng.IntN(len(pool))] }
	parts := make([]string, 1+rng.IntN(4))
	for i := range parts {
		parts[i] = pick(agreeParts)
	}
	req := agreeRequest{name: strings.Join(parts, "/"), ns: pick(agreeNS)}
	if req.name == "" {
		req.name = "x"
	}
	if rng.IntN(4) == 0 {
		req.intercept, req.host = true, pick(agreeInterceptHosts)
	} else {
		req.host = pick(agreeLocalHosts)
	}
	return req
}

// agreeCases is how many generated requests TestServeAndExplainAgree checks.
const agreeCases = 400

// TestServeAndExplainAgree checks the seeds and agreeCases generated
// requests (a fixed seed, so a failure repeats).
func TestServeAndExplainAgree(t *testing.T) {
	a := startAgreement(t)
	for _, req := range agreeSeeds {
		a.check(t, req)
	}
	rng := rand.New(rand.NewPCG(12, 1))
	checked := len(agreeSeeds)
	for range agreeCases {
		a.check(t, generate(rng))
		checked++
		if t.Failed() && checked > 50 {
			break // enough to see the pattern
		}
	}
	t.Logf("%d requests; serve's outcomes: %v", checked, a.outcomes)
	// The property is only as good as its spread: every registry, every
	// kind of refusal.
	for _, k := range []string{agreeA, agreeB, agreeC, "NAME_INVALID", "DENIED", "CONNECT"} {
		if a.outcomes[k] == 0 {
			t.Errorf("no generated request had outcome %s", k)
		}
	}
}

// FuzzServeAndExplainAgree is the same property for names, hosts and ns
// values the fuzzer makes up (limited to the bytes an image name and a
// host may hold).
func FuzzServeAndExplainAgree(f *testing.F) {
	for _, s := range agreeSeeds {
		pool := agreeLocalHosts
		if s.intercept {
			pool = agreeInterceptHosts
		}
		f.Add(s.intercept, uint8(slices.Index(pool, s.host)), s.ns, s.name)
	}
	a := startAgreement(f)
	f.Fuzz(func(t *testing.T, intercept bool, host uint8, ns, name string) {
		if name == "" || !imageNameBytes(name, "") || !imageNameBytes(ns, ":") {
			t.Skip()
		}
		req := agreeRequest{intercept: intercept, ns: ns, name: name, host: agreeLocalHosts[int(host)%len(agreeLocalHosts)]}
		if intercept {
			req.host = agreeInterceptHosts[int(host)%len(agreeInterceptHosts)]
		}
		a.check(t, req)
	})
}

// imageNameBytes reports whether s holds only the bytes of a repository
// name ([a-zA-Z0-9._/-]) and extra.
func imageNameBytes(s, extra string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._/-"+extra, c) >= 0) {
			return false
		}
	}
	return true
}
