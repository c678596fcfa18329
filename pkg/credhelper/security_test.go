package credhelper_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// B1 of issue 11: with ecrgate serve stopped, another local user listens
// on the registry-mode port and answers 401 Basic. A client using the
// default Docker keychain (crane, ko, go-containerregistry) asks the helper
// for that host's credentials. The helper must give none: registry mode
// answers /v2/ itself and never needs them.
func TestNoTokenForLocalProxyHosts(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	h, stderr := newHelper(t, e)

	var mu sync.Mutex
	var got []string
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="https://`+r.Host+`/"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
	}))
	defer hostile.Close()
	u, _ := url.Parse(hostile.URL)
	port := u.Port()
	// What the config's defaults (listen: 127.0.0.1:<port>) and a Docker
	// Desktop set-up put in local_hosts.
	h.LocalHosts = map[string]string{"127.0.0.1:" + port: reg, "localhost:" + port: reg, "host.docker.internal:5000": reg}

	for _, server := range []string{"localhost:" + port, "127.0.0.1:" + port, "http://localhost:" + port + "/v2/",
		"localhost:5999", "127.0.0.2:5000", "[::1]:5000", "registry.localhost:5000", "host.docker.internal:5000"} {
		code, out := run(h, "get", server)
		if code != 1 || strings.TrimSpace(out) != "credentials not found in native keychain" {
			t.Errorf("get %s: exit %d, %q; want credentials not found", server, code, redactOut(out))
		}
	}

	// The attack itself, as crane would run it.
	kc := authn.NewKeychainFromHelper(h)
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port} {
		repo, err := name.NewRepository(host+"/team/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.List(repo, remote.WithAuthFromKeychain(kc)); err == nil {
			t.Fatalf("list at the hostile listener succeeded")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("the client never reached the hostile listener: the test proves nothing")
	}
	for _, a := range got {
		if a != "" {
			t.Errorf("the listener on a local proxy port received credentials: %q", redact(a))
		}
	}
	if n := e.Calls("GetAuthorizationToken"); n != 0 {
		t.Errorf("GetAuthorizationToken calls = %d for local hosts; want 0", n)
	}
	if stderr.Len() != 0 {
		t.Errorf("a not-found answer was noisy: %q", stderr.String())
	}
	// docker login to a local host says what to do instead.
	if code, out := run(h, "store", `{"ServerURL":"localhost:`+port+`","Username":"AWS","Secret":"x"}`); code != 1 || !strings.Contains(out, "needs no login") {
		t.Errorf("store for a local host: exit %d %q", code, out)
	}
}

// redactOut keeps a failing test from printing a whole token.
func redactOut(out string) string {
	if i := strings.Index(out, `"Secret":"`); i >= 0 && len(out) > i+20 {
		return out[:i+20] + "…"
	}
	return out
}

func redact(a string) string {
	if len(a) > 12 {
		return a[:12] + "…"
	}
	return a
}

// recordingTokens is a token source that records what reached it.
type recordingTokens struct {
	mu   sync.Mutex
	asks []string
}

func (r *recordingTokens) Token(_ context.Context, registry string) (tokencache.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asks = append(r.asks, registry)
	return tokencache.Token{Registry: registry, Username: "AWS", Password: "secret-" + registry, ExpiresAt: time.Now().Add(time.Hour)}, nil
}
func (r *recordingTokens) Forget(string) error        { return nil }
func (r *recordingTokens) Cached() []tokencache.Token { return nil }

// Only a host that ecrhost accepts reaches the token source, whatever the
// source would make of the rest: the helper's own guarantee, not the
// token fetcher's.
func TestUnparseableHostsNeverReachTheTokenSource(t *testing.T) {
	src := &recordingTokens{}
	h := &credhelper.Helper{Tokens: src, Log: slog.New(slog.DiscardHandler)}
	for _, server := range []string{
		"123456789012.dkr.ecr.us-eas-1.amazonaws.com",            // region typo
		"12345678901.dkr.ecr.us-east-1.amazonaws.com",            // 11-digit account
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.test", // lookalike
		"evil.test/123456789012.dkr.ecr.us-east-1.amazonaws.com", // path
		"123456789012.dkr.ecr.us-east-1.amazonaws.co",
		"x.123456789012.dkr.ecr.us-east-1.amazonaws.com",
		"123456789012.dkr.ecr..amazonaws.com",
		"123456789012.dkr-ecr.us-east-1.on.aws.evil.test",
		"ghcr.io",
		"",
	} {
		user, secret, err := h.Get(server)
		if err == nil || user != "" || secret != "" {
			t.Errorf("get %q = %q, %q, %v; want an error", server, user, redact(secret), err)
		}
	}
	if len(src.asks) != 0 {
		t.Errorf("the token source was asked for %q", src.asks)
	}
	// The control: a good host does reach it.
	if _, _, err := h.Get(reg); err != nil || len(src.asks) != 1 || src.asks[0] != reg {
		t.Fatalf("good host: %v, asks %q", err, src.asks)
	}
}

// cachedTokens is CachedTokens over a fresh cache with a fixed clock and a
// counting fetcher, as the helper binary runs it.
func cachedTokens(t *testing.T, now time.Time) (*credhelper.CachedTokens, *int) {
	t.Helper()
	calls := 0
	return &credhelper.CachedTokens{
		Cache: tokencache.Cache{Dir: t.TempDir() + "/tokens"},
		Now:   func() time.Time { return now },
		Fetch: func(_ context.Context, registry string) (tokencache.Token, error) {
			calls++
			return tokencache.Token{Registry: registry, Username: "AWS", Password: "fresh", ExpiresAt: now.Add(12 * time.Hour)}, nil
		},
	}, &calls
}

// The warm path hands out a cached token only while it has more than the
// refresh margin left: one that expires inside the margin (a push may
// outlive it) or has expired is refreshed, never handed out.
func TestWarmPathRespectsTheRefreshMargin(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		cached    bool // handed out from the cache
	}{
		{"eleven hours left", 11 * time.Hour, true},
		{"just over the margin", tokencache.DefaultMargin + time.Minute, true},
		{"just inside the margin", tokencache.DefaultMargin - time.Minute, false},
		{"ten minutes left", 10 * time.Minute, false},
		{"expired a minute ago", -time.Minute, false},
		{"expired an hour ago", -time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens, calls := cachedTokens(t, now)
			key := tokencache.Key(reg, tokencache.Identity{}, tokens.Env)
			if err := tokens.Cache.Write(key, tokencache.Token{Registry: reg, Username: "AWS", Password: "cached", ExpiresAt: now.Add(tc.expiresIn)}); err != nil {
				t.Fatal(err)
			}
			tok, err := tokens.Token(context.Background(), reg)
			if err != nil {
				t.Fatal(err)
			}
			want, wantCalls := "fresh", 1
			if tc.cached {
				want, wantCalls = "cached", 0
			}
			if tok.Password != want || *calls != wantCalls {
				t.Errorf("token %q after %d fetches; want %q after %d", tok.Password, *calls, want, wantCalls)
			}
			if !tok.Usable(now, tokencache.DefaultMargin) {
				t.Errorf("handed out a token expiring at %s at %s", tok.ExpiresAt, now)
			}
		})
	}
}

// The helper's direct fetch holds the cache lock, as the fetcher does: a
// helper that finds the cache stale while another process holds the lock
// (and is fetching) waits, then takes that process's token instead of
// making a call of its own.
func TestDirectFetchWaitsForTheCacheLock(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	tokens, fetched := directTokens(t, e, tokencache.Identity{})
	now := time.Now()
	key := tokencache.Key(reg, tokencache.Identity{}, tokens.Env)
	// A stale entry, so the helper's first read reaches the clock.
	if err := tokens.Cache.Write(key, tokencache.Token{Registry: reg, Username: "AWS", Password: "stale", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	unlock, err := tokens.Cache.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	firstRead := make(chan struct{})
	var once sync.Once
	tokens.Now = func() time.Time {
		once.Do(func() { close(firstRead) })
		return now
	}
	type result struct {
		tok tokencache.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := tokens.Token(context.Background(), reg)
		done <- result{tok, err}
	}()
	<-firstRead
	// The "other process" finishes its fetch while it holds the lock.
	other := tokencache.Token{Registry: reg, Username: "AWS", Password: "from-the-lock-holder", ExpiresAt: now.Add(12 * time.Hour)}
	if err := tokens.Cache.Write(key, other); err != nil {
		t.Fatal(err)
	}
	unlock()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.tok.Password != other.Password || e.Calls("GetAuthorizationToken") != 0 || fetched.Load() != 0 {
		t.Errorf("got token %q with %d API calls and %d fetcher runs; want the lock holder's token and no call",
			redact(r.tok.Password), e.Calls("GetAuthorizationToken"), fetched.Load())
	}
}
