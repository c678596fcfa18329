package tokencache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/filelock"
)

const srcReg = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

var discard = slog.New(slog.DiscardHandler)

func srcKey(registry string) (string, error) { return Key(registry, Identity{}, nil), nil }

// counting is a Fetch that counts its calls and hands out a new password
// each time, valid for life from now().
type counting struct {
	calls atomic.Int32
	err   error
	life  time.Duration
	now   func() time.Time
}

func (c *counting) fetch(_ context.Context, registry string) (Token, error) {
	n := c.calls.Add(1)
	if c.err != nil {
		return Token{}, c.err
	}
	return Token{Registry: registry, Username: "AWS", Password: fmt.Sprintf("fresh-%d", n), ExpiresAt: c.now().Add(c.life)}, nil
}

func newSource(t *testing.T, now time.Time) (*Source, *counting) {
	t.Helper()
	c := &counting{life: 12 * time.Hour, now: func() time.Time { return now }}
	return &Source{
		Cache: Cache{Dir: filepath.Join(t.TempDir(), "tokens")},
		Key:   srcKey,
		Fetch: c.fetch,
		Now:   func() time.Time { return now },
	}, c
}

func lockPath(c Cache, key string) string { return strings.TrimSuffix(c.path(key), ".json") + ".lock" }

// One fetch, then memory; another Source (process) on the same directory
// reads the file; Forget drops both.
func TestSourceMemoryThenFile(t *testing.T) {
	now := time.Now()
	s, c := newSource(t, now)
	ctx := context.Background()
	first, err := s.Token(ctx, srcReg)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Token(ctx, srcReg); err != nil || again.Password != first.Password {
		t.Fatalf("second call: %v, %v", again, err)
	}
	other := &Source{Cache: s.Cache, Key: srcKey, Fetch: c.fetch, Now: s.Now}
	if tok, err := other.Token(ctx, srcReg); err != nil || tok.Password != first.Password {
		t.Fatalf("another source on the same cache: %v, %v", tok, err)
	}
	if n := c.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
	if m := mode(t, s.Cache.path(Key(srcReg, Identity{}, nil))); m != 0o600 {
		t.Errorf("cache file mode %04o, want 0600", m)
	}
	if got := other.Cached(); len(got) != 1 || got[0].Password != first.Password {
		t.Errorf("Cached = %v", got)
	}
	if err := s.Forget(srcReg); err != nil {
		t.Fatal(err)
	}
	if got := s.Cached(); len(got) != 0 {
		t.Errorf("Cached after Forget = %v", got)
	}
	if tok, err := s.Token(ctx, srcReg); err != nil || tok.Password == first.Password || c.calls.Load() != 2 {
		t.Errorf("after Forget: %v, %v, %d fetches; want a new token", tok, err, c.calls.Load())
	}
}

// A cached token is handed out while it has more than the margin left;
// inside the margin it is refreshed, and when the refresh fails it is used
// only until it expires.
func TestSourceMarginAndStillValidFallback(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	refused := errors.New("throttled")
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		fetchErr  error
		want      string // password handed out; "" for an error
	}{
		{"usable", 2 * time.Hour, nil, "cached"},
		{"usable, AWS down", 2 * time.Hour, refused, "cached"},
		{"inside the margin", 30 * time.Minute, nil, "fresh-1"},
		{"inside the margin, AWS down", 30 * time.Minute, refused, "cached"},
		{"expired", -time.Minute, nil, "fresh-1"},
		{"expired, AWS down", -time.Minute, refused, ""},
		{"expires now, AWS down", 0, refused, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newSource(t, now)
			c.err = tc.fetchErr
			key, _ := srcKey(srcReg)
			if err := s.Cache.Write(key, Token{Registry: srcReg, Username: "AWS", Password: "cached", ExpiresAt: now.Add(tc.expiresIn)}); err != nil {
				t.Fatal(err)
			}
			tok, err := s.Token(context.Background(), srcReg)
			if tc.want == "" {
				if err == nil || !errors.Is(err, refused) {
					t.Fatalf("handed out %v (expires %s at %s), err %v; want the fetch error", tok.Password, tok.ExpiresAt, now, err)
				}
				return
			}
			if err != nil || tok.Password != tc.want {
				t.Fatalf("got %q, %v; want %q", tok.Password, err, tc.want)
			}
			if !tok.Valid(now) {
				t.Errorf("handed out a token that expired at %s", tok.ExpiresAt)
			}
		})
	}
}

// Fetch runs holding the key's lock, after the cache was read again: a
// Source that finds the cache stale while another process holds the lock
// waits and takes that process's token instead of fetching.
func TestSourceFetchHoldsTheLockAndRechecks(t *testing.T) {
	now := time.Now()
	s, c := newSource(t, now)
	key, _ := srcKey(srcReg)
	lp := lockPath(s.Cache, key)

	// Fetch finds the lock taken (by itself).
	var heldDuringFetch atomic.Bool
	s.Fetch = func(ctx context.Context, registry string) (Token, error) {
		if _, err := filelock.Lock(ctx, lp, 20*time.Millisecond); errors.Is(err, filelock.ErrTimeout) {
			heldDuringFetch.Store(true)
		}
		return c.fetch(ctx, registry)
	}
	if _, err := s.Token(context.Background(), srcReg); err != nil {
		t.Fatal(err)
	}
	if !heldDuringFetch.Load() {
		t.Error("Fetch ran without the cache lock")
	}
	if u, err := filelock.Lock(context.Background(), lp, time.Second); err != nil {
		t.Fatalf("lock not released after the fetch: %v", err)
	} else {
		u()
	}

	// Another process holds the lock and refreshes meanwhile.
	s2, c2 := newSource(t, now)
	unlock, err := s2.Cache.Lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Token, 1)
	go func() {
		tok, err := s2.Token(context.Background(), srcReg)
		if err != nil {
			t.Error(err)
		}
		done <- tok
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s2.Cache.Write(key, Token{Registry: srcReg, Username: "AWS", Password: "from-the-lock-holder", ExpiresAt: now.Add(12 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	unlock()
	if tok := <-done; tok.Password != "from-the-lock-holder" || c2.calls.Load() != 0 {
		t.Errorf("got %q after %d fetches; want the lock holder's token and no fetch", tok.Password, c2.calls.Load())
	}
}

// Delegate runs without the lock, since it stands for a program that takes
// the lock itself: here it takes the same lock in this process, which
// would wait forever (until the context's end) if the Source still held it.
func TestSourceDelegateRunsWithoutTheLock(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		fetch bool // a Fetch that fails before the delegate
	}{{"fetch fails", true}, {"no fetch", false}} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newSource(t, now)
			c.err = errors.New("declined")
			if !tc.fetch {
				s.Fetch = nil
			}
			key, _ := srcKey(srcReg)
			var delegated atomic.Int32
			s.Delegate = func(ctx context.Context, registry string) (Token, error) {
				delegated.Add(1)
				unlock, err := s.Cache.Lock(ctx, key)
				if err != nil {
					return Token{}, fmt.Errorf("delegate could not lock: %w", err)
				}
				defer unlock()
				tok := Token{Registry: registry, Username: "AWS", Password: "delegated", ExpiresAt: now.Add(12 * time.Hour)}
				return tok, s.Cache.Write(key, tok)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tok, err := s.Token(ctx, srcReg)
			if err != nil || tok.Password != "delegated" || delegated.Load() != 1 {
				t.Fatalf("got %q, %v after %d delegations", tok.Password, err, delegated.Load())
			}
			if want := map[bool]int32{true: 1, false: 0}[tc.fetch]; c.calls.Load() != want {
				t.Errorf("Fetch ran %d times, want %d", c.calls.Load(), want)
			}
			// Memory answers next, then the delegate's file.
			if tok, err := s.Token(ctx, srcReg); err != nil || tok.Password != "delegated" || delegated.Load() != 1 {
				t.Errorf("second call: %q, %v, %d delegations", tok.Password, err, delegated.Load())
			}
		})
	}
}

// When both stages fail, the delegate's error is the one returned (it is
// the one that explains), unless a still-valid token is cached.
func TestSourceDelegateFailure(t *testing.T) {
	now := time.Now()
	s, c := newSource(t, now)
	c.err = errors.New("direct call failed")
	explained := errors.New("no AWS credentials found: run aws configure")
	s.Delegate = func(context.Context, string) (Token, error) { return Token{}, explained }
	if _, err := s.Token(context.Background(), srcReg); err != explained {
		t.Fatalf("err = %v; want the delegate's", err)
	}
	key, _ := srcKey(srcReg)
	if err := s.Cache.Write(key, Token{Registry: srcReg, Username: "AWS", Password: "still-valid", ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(context.Background(), srcReg); err != nil || tok.Password != "still-valid" {
		t.Fatalf("with a still-valid cached token: %q, %v", tok.Password, err)
	}
}

// Fifty Sources (fifty processes) on one empty cache make one fetch.
func TestSourceConcurrentSourcesFetchOnce(t *testing.T) {
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "tokens")
	c := &counting{life: 12 * time.Hour, now: func() time.Time { return now }}
	slow := func(ctx context.Context, registry string) (Token, error) {
		time.Sleep(30 * time.Millisecond)
		return c.fetch(ctx, registry)
	}
	var wg sync.WaitGroup
	got := make([]string, 50)
	for i := range got {
		wg.Go(func() {
			s := &Source{Cache: Cache{Dir: dir}, Key: srcKey, Fetch: slow}
			tok, err := s.Token(context.Background(), srcReg)
			if err != nil {
				t.Error(err)
			}
			got[i] = tok.Password
		})
	}
	wg.Wait()
	for i, p := range got {
		if p != got[0] || p == "" {
			t.Fatalf("source %d got %q, source 0 %q", i, p, got[0])
		}
	}
	if n := c.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

// NoCache fetches on every call and writes nothing; a zero Cache keeps
// tokens in memory only.
func TestSourceNoCacheAndMemoryOnly(t *testing.T) {
	now := time.Now()
	s, c := newSource(t, now)
	s.NoCache = true
	for range 3 {
		if _, err := s.Token(context.Background(), srcReg); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.calls.Load(); n != 3 {
		t.Errorf("NoCache fetches = %d, want 3", n)
	}
	if _, err := os.Stat(s.Cache.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NoCache created the cache directory: %v", err)
	}

	m := &Source{Key: srcKey, Fetch: c.fetch}
	for range 3 {
		if _, err := m.Token(context.Background(), srcReg); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.calls.Load(); n != 4 {
		t.Errorf("memory-only fetches = %d, want 4", n-3)
	}
	if m.Cached() != nil || m.Forget(srcReg) != nil {
		t.Error("a memory-only Source lists or removes files")
	}
}

// A key that cannot be made is the error, before any cache or fetch; a
// cache that is not private is refused before anything is fetched into it.
func TestSourceRefusals(t *testing.T) {
	now := time.Now()
	s, c := newSource(t, now)
	bad := errors.New(`"x" is not an ECR registry`)
	s.Key = func(string) (string, error) { return "", bad }
	if _, err := s.Token(context.Background(), "x"); err != bad || c.calls.Load() != 0 {
		t.Errorf("bad key: %v after %d fetches", err, c.calls.Load())
	}

	s, c = newSource(t, now)
	if err := os.MkdirAll(s.Cache.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, s.Cache.Dir, 0o755)
	if _, err := s.Token(context.Background(), srcReg); !errors.Is(err, ErrNotPrivate) || c.calls.Load() != 0 {
		t.Errorf("loose directory: %v after %d fetches; want ErrNotPrivate and none", err, c.calls.Load())
	}
	// With a delegate, the delegate (which explains it the same way) runs.
	s.Delegate = func(context.Context, string) (Token, error) { return Token{}, errors.New("delegate ran") }
	if _, err := s.Token(context.Background(), srcReg); err == nil || err.Error() != "delegate ran" {
		t.Errorf("loose directory with a delegate: %v", err)
	}
}

// TestMain lets the test binary play ecrgate-fetch-token: a Source in
// another process that locks, fetches and writes the cache itself.
func TestMain(m *testing.M) {
	if dir := os.Getenv("TOKENCACHE_TEST_FETCHER"); dir != "" {
		s := &Source{Cache: Cache{Dir: dir}, Key: srcKey, Fetch: func(_ context.Context, registry string) (Token, error) {
			time.Sleep(30 * time.Millisecond) // the API's latency: let the helpers overlap
			return Token{Registry: registry, Username: "AWS", Password: fmt.Sprintf("from-pid-%d", os.Getpid()), ExpiresAt: time.Now().Add(12 * time.Hour)}, nil
		}}
		tok, err := s.Token(context.Background(), os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(tok)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The helper's arrangement with real processes: each "helper" tries an
// in-process fetch under the lock, which declines, then runs the fetcher
// program, which takes the same lock. Twenty at once on an empty cache
// must neither deadlock nor fetch more than once.
func TestSourceHelpersAndFetcherProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	var spawned atomic.Int32
	exe := func(ctx context.Context, registry string) (Token, error) {
		spawned.Add(1)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", registry)
		cmd.Env = append(os.Environ(), "TOKENCACHE_TEST_FETCHER="+dir)
		out, err := cmd.Output()
		if err != nil {
			return Token{}, fmt.Errorf("fetcher: %v: %s", err, out)
		}
		var tok Token
		return tok, json.Unmarshal(out, &tok)
	}
	declined := func(context.Context, string) (Token, error) { return Token{}, errors.New("declined") }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	got := make([]string, 20)
	for i := range got {
		wg.Go(func() {
			s := &Source{Cache: Cache{Dir: dir}, Key: srcKey, Fetch: declined, Delegate: exe}
			tok, err := s.Token(ctx, srcReg)
			if err != nil {
				t.Error(err)
			}
			got[i] = tok.Password
		})
	}
	wg.Wait()
	distinct := map[string]bool{}
	for _, p := range got {
		distinct[p] = true
	}
	if len(distinct) != 1 || got[0] == "" {
		t.Errorf("helpers handed out %d different tokens (%v); want one", len(distinct), distinct)
	}
	cached, ok := Cache{Dir: dir}.Read(Key(srcReg, Identity{}, nil), discard)
	if !ok || cached.Password != got[0] {
		t.Errorf("cache holds %q, %v; helpers handed out %q", cached.Password, ok, got[0])
	}
	t.Logf("%d of %d helpers ran the fetcher", spawned.Load(), len(got))
}
