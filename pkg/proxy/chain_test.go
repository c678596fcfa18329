package proxy

// The upstream transport chain (issue 12, item 3), link by link and whole:
// each link is driven with a call in the request's context, as the handler
// sends it, against an httptest upstream or the emulator.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/distpath"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/repocreate"
)

const chainRegistry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

// seenRequest is one request an upstream got.
type seenRequest struct {
	method, path, auth, body string
}

func (s seenRequest) String() string {
	return fmt.Sprintf("%s %s %s", s.method, s.path, password(s.auth))
}

// recorder is an upstream that records every request, then lets answer
// reply.
type recorder struct {
	mu     sync.Mutex
	seen   []seenRequest
	answer http.HandlerFunc
}

func (u *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	u.mu.Lock()
	u.seen = append(u.seen, seenRequest{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), body: string(b)})
	u.mu.Unlock()
	u.answer(w, r)
}

func (u *recorder) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// startRecorder serves a recorder that answers with answer.
func startRecorder(t *testing.T, answer http.HandlerFunc) (*recorder, *url.URL) {
	t.Helper()
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return rec, u
}

// password is the password of a Basic Authorization value, or the value.
func password(auth string) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	if err != nil {
		return auth
	}
	_, pw, _ := strings.Cut(string(raw), ":")
	return pw
}

// upstreamRequest is the request the handler's Rewrite would send upstream
// for method path (and query) to the registry at upstream, with its call.
func upstreamRequest(t *testing.T, upstream *url.URL, mode Mode, verified bool, method, path, body string) (*http.Request, *call) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, upstream.Scheme+"://"+upstream.Host+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = chainRegistry
	route := distpath.Parse(method, req.URL.Path)
	c := &call{route: route, target: Target{Registry: chainRegistry, Repository: route.Name, Upstream: upstream}, mode: mode, verified: verified}
	return req.WithContext(context.WithValue(req.Context(), ctxKey{}, c)), c
}

// oneShot makes req's body readable once only, as a client's upload is.
func oneShot(req *http.Request) *http.Request {
	req.GetBody = nil
	return req
}

// fakeTokens hands out token-0, then token-1 once token-0 was forgotten,
// and so on.
type fakeTokens struct {
	mu      sync.Mutex
	gen     int
	gets    int
	forgets int
	err     error
}

func (f *fakeTokens) Token(_ context.Context, registry string) (ecrauth.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.err != nil {
		return ecrauth.Token{}, f.err
	}
	return ecrauth.Token{Registry: registry, Username: "AWS", Password: fmt.Sprintf("token-%d", f.gen)}, nil
}

func (f *fakeTokens) Forget(string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgets++
	f.gen++
	return nil
}

func (f *fakeTokens) counts() (gets, forgets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets, f.forgets
}

// emulatorTokens hands out the emulator's own tokens
// (GetAuthorizationToken), each until it is forgotten.
type emulatorTokens struct {
	api     *ecr.Client
	mu      sync.Mutex
	tok     *ecrauth.Token
	forgets int
}

func (e *emulatorTokens) Token(ctx context.Context, registry string) (ecrauth.Token, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok != nil {
		return *e.tok, nil
	}
	out, err := e.api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return ecrauth.Token{}, err
	}
	if len(out.AuthorizationData) == 0 {
		return ecrauth.Token{}, errors.New("GetAuthorizationToken: no authorizationData")
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return ecrauth.Token{}, err
	}
	user, pw, _ := strings.Cut(string(raw), ":")
	e.tok = &ecrauth.Token{Registry: registry, Username: user, Password: pw}
	return *e.tok, nil
}

func (e *emulatorTokens) Forget(string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tok = nil
	e.forgets++
	return nil
}

// emulated is the emulator as the upstream, with the real ensurer creating
// repositories in it through the SDK.
type emulated struct {
	e        *ecrfake.Emulator
	api      *ecr.Client
	ens      *repocreate.Ensurer
	upstream *url.URL
}

// startEmulated starts the emulator and an ensurer for it whose
// configuration is yaml.
func startEmulated(t *testing.T, yaml string) *emulated {
	t.Helper()
	e := ecrfake.Start(t, ecrfake.Options{})
	api := ecr.NewFromConfig(aws.Config{Region: e.Region(), BaseEndpoint: aws.String(e.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey(), e.SecretKey(), "")})
	cfg, err := config.Parse([]byte(yaml), t.TempDir()+"/ecrgate.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	ens, err := repocreate.New(repocreate.Options{Config: cfg,
		Clients: func(context.Context, string) (repocreate.ECR, string, error) {
			return api, "arn:aws:iam::" + e.Account() + ":user/ecrfake", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	u, err := url.Parse(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	return &emulated{e: e, api: api, ens: ens, upstream: u}
}

// auth is a valid Authorization value for the emulator's registry.
func (m *emulated) auth(t *testing.T) string {
	t.Helper()
	out, err := m.api.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	return "Basic " + aws.ToString(out.AuthorizationData[0].AuthorizationToken)
}

// deleteRepository deletes repo behind the ensurer's back.
func (m *emulated) deleteRepository(t *testing.T, repo string) {
	t.Helper()
	if _, err := m.api.DeleteRepository(context.Background(), &ecr.DeleteRepositoryInput{RepositoryName: aws.String(repo), Force: true}); err != nil {
		t.Fatal(err)
	}
}

func (m *emulated) exists(repo string) bool {
	_, ok := m.e.Repository("", repo)
	return ok
}

// discard is a logger for links under test.
var discard = slog.New(slog.DiscardHandler)

// TestUpstreamChain: the links work together in their order. A push whose
// token expired and whose repository was deleted behind ecrgate's back
// gets both fixed in one request (refresh, then re-create), and every
// token sent is recorded for redaction.
func TestUpstreamChain(t *testing.T) {
	m := startEmulated(t, "")
	tokens := &emulatorTokens{api: m.api}
	chain := newUpstreamChain(Options{Transport: NewTransport(DefaultTimeouts), Tokens: tokens, Ensurer: m.ens, Logger: discard})

	req, c := upstreamRequest(t, m.upstream, RegistryMode, false, http.MethodPost, "/v2/chain/app/blobs/uploads/", "")
	if err := m.ens.Ensure(context.Background(), chainRegistry, "chain/app"); err != nil {
		t.Fatal(err)
	}
	first, err := tokens.Token(context.Background(), chainRegistry)
	if err != nil {
		t.Fatal(err)
	}
	m.e.ExpireTokens()
	m.deleteRepository(t, "chain/app")

	resp, err := chain.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload start: %d %s; want 202 after a refresh and a re-create", resp.StatusCode, b)
	}
	if !m.exists("chain/app") {
		t.Error("chain/app was not created again")
	}
	if n := m.e.Calls("CreateRepository"); n != 2 {
		t.Errorf("CreateRepository calls = %d, want 2", n)
	}
	if tokens.forgets != 1 {
		t.Errorf("%d tokens forgotten, want 1", tokens.forgets)
	}
	second, err := tokens.Token(context.Background(), chainRegistry)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []ecrauth.Token{first, second} {
		if !slices.Contains(c.sent, basicAuth(tok)) || !slices.Contains(c.sent, tok.Password) {
			t.Errorf("a token sent upstream is missing from the call's redactions")
		}
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("the chain set Authorization on the caller's request")
	}
}
