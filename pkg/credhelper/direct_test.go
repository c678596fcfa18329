package credhelper_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/credhelper"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// directTokens is the helper's token source as FromEnv builds it, with
// Direct on and a counting stand-in for ecrgate-fetch-token (the SDK).
func directTokens(t *testing.T, e *ecrfake.Emulator, id tokencache.Identity) (*credhelper.CachedTokens, *atomic.Int32) {
	t.Helper()
	env := append(e.Env(), "HOME="+t.TempDir())
	setEnv(t, env)
	t.Setenv("AWS_CA_BUNDLE", "")
	dir := filepath.Join(t.TempDir(), "tokens")
	src := ecrauth.New(ecrauth.Options{CacheDir: dir, Env: env})
	var fetched atomic.Int32
	return &credhelper.CachedTokens{
		Cache:      tokencache.Cache{Dir: dir},
		Identities: func(string) tokencache.Identity { return id },
		Env:        env,
		Direct:     true,
		Fetch: func(ctx context.Context, reg string) (tokencache.Token, error) {
			fetched.Add(1)
			return src.Token(ctx, reg)
		},
	}, &fetched
}

// With keys in the environment a miss is answered in the helper's own
// process, into the same cache entry the fetcher would write, and the
// next get is a cache hit.
func TestDirectFetchAnswersAMissItself(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	tokens, fetched := directTokens(t, e, tokencache.Identity{})
	tok, err := tokens.Token(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if fetched.Load() != 0 || e.Calls("GetAuthorizationToken") != 1 {
		t.Fatalf("fetcher ran %d times, API calls %d; want 0 and 1", fetched.Load(), e.Calls("GetAuthorizationToken"))
	}
	cached, ok := tokens.Cache.Read(tokencache.Key(reg, tokencache.Identity{}, tokens.Env), slog.New(slog.DiscardHandler))
	if !ok || cached.Password != tok.Password || !cached.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("cache holds %v, %v; handed out %v", cached, ok, tok)
	}
	again, err := tokens.Token(context.Background(), reg)
	if err != nil || again.Password != tok.Password || e.Calls("GetAuthorizationToken") != 1 {
		t.Fatalf("second get: %v, %v, %d API calls", again, err, e.Calls("GetAuthorizationToken"))
	}
	// The SDK-backed source reads the same entry: no call either.
	src := ecrauth.New(ecrauth.Options{CacheDir: tokens.Cache.Dir, Env: tokens.Env})
	if st, err := src.Token(context.Background(), reg); err != nil || st.Password != tok.Password || e.Calls("GetAuthorizationToken") != 1 {
		t.Fatalf("ecrauth after a direct fetch: %v, %v, %d API calls", st, err, e.Calls("GetAuthorizationToken"))
	}
}

// A failed direct call falls back to the fetcher, which retries with the
// SDK (and would explain a lasting error).
func TestDirectFetchFallsBackOnError(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	tokens, fetched := directTokens(t, e, tokencache.Identity{})
	e.FailNext("GetAuthorizationToken", 1, ecrfake.FaultServerError)
	tok, err := tokens.Token(context.Background(), reg)
	if err != nil || !tok.Valid(time.Now()) {
		t.Fatalf("get after one 500: %v, %v", tok, err)
	}
	if fetched.Load() != 1 || e.Calls("GetAuthorizationToken") != 2 {
		t.Errorf("fetcher ran %d times, API calls %d; want 1 and 2", fetched.Load(), e.Calls("GetAuthorizationToken"))
	}
}

// What envtoken declines (here, a configured profile) goes to the fetcher
// without a direct call.
func TestDirectFetchDeclinesProfiles(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	tokens, fetched := directTokens(t, e, tokencache.Identity{Profile: "dev"})
	tokens.Fetch = func(context.Context, string) (tokencache.Token, error) {
		fetched.Add(1)
		return tokencache.Token{}, errors.New("fetcher reached")
	}
	if _, err := tokens.Token(context.Background(), reg); err == nil || err.Error() != "fetcher reached" {
		t.Fatalf("err = %v", err)
	}
	if fetched.Load() != 1 || e.Calls("GetAuthorizationToken") != 0 {
		t.Errorf("fetcher ran %d times, API calls %d; want 1 and 0", fetched.Load(), e.Calls("GetAuthorizationToken"))
	}
}

// ECRGATE_DISABLE_CACHE: every get calls the API, directly, and writes no
// cache file.
func TestDirectFetchWithoutCache(t *testing.T) {
	e := ecrfake.Start(t, ecrfake.Options{})
	tokens, fetched := directTokens(t, e, tokencache.Identity{})
	tokens.NoCache = true
	for range 2 {
		if _, err := tokens.Token(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
	}
	if fetched.Load() != 0 || e.Calls("GetAuthorizationToken") != 2 {
		t.Errorf("fetcher ran %d times, API calls %d; want 0 and 2", fetched.Load(), e.Calls("GetAuthorizationToken"))
	}
	if all := tokens.Cache.All(slog.New(slog.DiscardHandler)); len(all) != 0 {
		t.Errorf("cache written with caching off: %v", all)
	}
}
