package credhelper_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/ecrfake"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// ecrgate-fetch-token takes the cache lock itself, so the helper must not
// hold it while the fetcher runs, whether its direct fetch declined (a
// profile) or failed (a 500): here the fetcher's stand-in takes the lock
// as the real one would, with a deadline that a held lock would miss.
func TestFetcherRunsWithoutTheHelpersLock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		id    tokencache.Identity
		fault bool
	}{
		{"direct fetch declined", tokencache.Identity{Profile: "dev"}, false},
		{"direct fetch failed", tokencache.Identity{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ecrfake.Start(t, ecrfake.Options{})
			tokens, fetched := directTokens(t, e, tc.id)
			if tc.fault {
				e.FailNext("GetAuthorizationToken", 1, ecrfake.FaultServerError)
			}
			key := tokencache.Key(reg, tc.id, tokens.Env)
			now := time.Now()
			tokens.Fetch = func(ctx context.Context, registry string) (tokencache.Token, error) {
				fetched.Add(1)
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				unlock, err := tokens.Cache.Lock(ctx, key)
				if err != nil {
					return tokencache.Token{}, err
				}
				defer unlock()
				tok := tokencache.Token{Registry: registry, Username: "AWS", Password: "from-the-fetcher", ExpiresAt: now.Add(12 * time.Hour)}
				return tok, tokens.Cache.Write(key, tok)
			}
			tok, err := tokens.Token(context.Background(), reg)
			if err != nil || tok.Password != "from-the-fetcher" || fetched.Load() != 1 {
				t.Fatalf("got %q, %v after %d fetcher runs; want the fetcher's token", redact(tok.Password), err, fetched.Load())
			}
		})
	}
}

// When the refresh fails (the fetcher could not be run, or failed), a
// cached token inside the refresh margin is still handed out until it
// expires; an expired one never is.
func TestCachedTokenUsedUntilItExpiresWhenRefreshFails(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fetcherFailed := errors.New("ecrgate-fetch-token is not next to docker-credential-ecrgate nor on PATH: reinstall ecrgate (make install)")
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		want      string // "" for the fetcher's error
	}{
		{"ten minutes left", 10 * time.Minute, "cached"},
		{"a second left", time.Second, "cached"},
		{"expired a second ago", -time.Second, ""},
		{"expired an hour ago", -time.Hour, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens, calls := cachedTokens(t, now)
			tokens.Fetch = func(context.Context, string) (tokencache.Token, error) {
				*calls++
				return tokencache.Token{}, fetcherFailed
			}
			key := tokencache.Key(reg, tokencache.Identity{}, tokens.Env)
			if err := tokens.Cache.Write(key, tokencache.Token{Registry: reg, Username: "AWS", Password: "cached", ExpiresAt: now.Add(tc.expiresIn)}); err != nil {
				t.Fatal(err)
			}
			tok, err := tokens.Token(context.Background(), reg)
			if *calls != 1 {
				t.Errorf("fetcher ran %d times, want 1 (the token is inside the margin)", *calls)
			}
			if tc.want == "" {
				if err != fetcherFailed {
					t.Errorf("got %q, %v; want the fetcher's error", tok.Password, err)
				}
				return
			}
			if err != nil || tok.Password != tc.want || !tok.Valid(now) {
				t.Errorf("got %q (expires %s), %v; want the cached token", tok.Password, tok.ExpiresAt, err)
			}
		})
	}
}
