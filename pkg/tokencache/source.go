package tokencache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Source hands out registry tokens with the one token-cache algorithm that
// the credential helper, ecrgate-fetch-token and the proxy share:
//
//  1. memory: a token this Source handed out before, while usable;
//  2. the file cache (Cache), while usable, without a lock: a warm get;
//  3. the lock of the key, then the file cache again: another process may
//     have refreshed the token while this one waited;
//  4. Fetch, still holding the lock, and an atomic write of its token;
//  5. Delegate, without the lock, when Fetch is nil or failed or the lock
//     could not be taken;
//  6. when the refresh failed: the cached token as long as it has not
//     expired (a push may still finish with it), never an expired one.
//
// "Usable" means more than Margin of life left (Token.Usable). Concurrent
// calls for one key in a process share one load (singleflight); concurrent
// processes share one Fetch through the lock. A Source must not be copied
// after first use; set its fields before. Safe for concurrent use.
type Source struct {
	// Cache is the file cache shared by the user's processes; a zero Cache
	// (Dir "") keeps tokens in this process's memory only.
	Cache Cache
	// Key names registry's (registry, identity) pair (see Key). Its error
	// (a host that does not parse) is Token's, before any cache is read.
	Key func(registry string) (string, error)
	// Fetch gets a fresh token in this process. It runs holding the key's
	// lock, after the cache was checked again, and its token is written
	// to the cache. An error sends the Source on to Delegate, if any.
	Fetch func(ctx context.Context, registry string) (Token, error)
	// Delegate gets a token when Fetch is nil or fails, or the lock cannot
	// be taken. It runs without the lock, and its token is not written:
	// it is for a fetcher in another process (ecrgate-fetch-token) that
	// takes the lock and writes the cache itself, so holding the lock
	// across it would deadlock.
	Delegate func(ctx context.Context, registry string) (Token, error)
	// Margin: refresh when less than this much life is left (DefaultMargin).
	Margin time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// NoCache skips memory, file and lock: every call fetches.
	NoCache bool
	// Log gets debug lines and warnings, never a password (default: discard).
	Log *slog.Logger

	group singleflight.Group
	mu    sync.Mutex
	mem   map[string]Token // key -> token
}

// errNoFetcher is Token's error for a Source with neither Fetch nor Delegate.
var errNoFetcher = errors.New("tokencache: Source has no Fetch and no Delegate")

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Source) margin() time.Duration {
	if s.Margin > 0 {
		return s.Margin
	}
	return DefaultMargin
}

func (s *Source) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Token returns a usable token for registry (see Source).
func (s *Source) Token(ctx context.Context, registry string) (Token, error) {
	key, err := s.Key(registry)
	if err != nil {
		return Token{}, err
	}
	if !s.NoCache {
		if t, ok := s.recall(key); ok && t.Usable(s.now(), s.margin()) {
			s.log().Debug("token from memory", "registry", t.Registry)
			return t, nil
		}
	}
	v, err, _ := s.group.Do(key, func() (any, error) { return s.load(ctx, registry, key) })
	if err != nil {
		return Token{}, err
	}
	return v.(Token), nil
}

// load is Token past the memory cache, once per key at a time.
func (s *Source) load(ctx context.Context, registry, key string) (Token, error) {
	if s.NoCache {
		return s.fetch(ctx, registry)
	}
	if s.Cache.Dir == "" {
		t, err := s.fetch(ctx, registry)
		if err == nil {
			s.remember(key, t)
		}
		return t, err
	}
	log := s.log()
	cached, ok := s.Cache.Read(key, log)
	if ok && cached.Usable(s.now(), s.margin()) {
		log.Debug("token from file cache", "registry", cached.Registry)
		s.remember(key, cached)
		return cached, nil
	}
	err := errNoFetcher
	if s.Fetch != nil {
		var t Token
		var done bool
		t, done, err = s.fetchLocked(ctx, registry, key, &cached, &ok)
		if done {
			s.remember(key, t)
			return t, nil
		}
	}
	if s.Delegate != nil {
		t, derr := s.delegate(ctx, registry, err)
		if derr == nil {
			s.remember(key, t)
			return t, nil
		}
		err = derr
	}
	// The refresh failed. A token that has not expired yet is better than
	// a failed push; an expired one is never handed out.
	if ok && cached.Valid(s.now()) {
		log.Warn("token refresh failed; using the cached token until it expires",
			"registry", cached.Registry, "expires_at", cached.ExpiresAt, "err", err)
		return cached, nil
	}
	return Token{}, err
}

// fetchLocked takes the key's lock, checks the file cache again and, on a
// miss, runs Fetch and writes its token, releasing the lock before it
// returns. done reports a token to hand out. *cached and *ok are updated
// to what the file cache held under the lock, for the fallback.
func (s *Source) fetchLocked(ctx context.Context, registry, key string, cached *Token, ok *bool) (t Token, done bool, err error) {
	log := s.log()
	unlock, err := s.Cache.Lock(ctx, key)
	if err != nil {
		return Token{}, false, err
	}
	defer unlock()
	// Another process may have refreshed the token while we waited.
	*cached, *ok = s.Cache.Read(key, log)
	if *ok && cached.Usable(s.now(), s.margin()) {
		log.Debug("token from file cache after lock", "registry", cached.Registry)
		return *cached, true, nil
	}
	start := time.Now()
	t, err = s.Fetch(ctx, registry)
	if err != nil {
		return Token{}, false, err
	}
	if err := s.Cache.Write(key, t); err != nil {
		log.Warn("could not write the token cache", "err", err)
	}
	log.Debug("token fetched", "registry", t.Registry, "expires_at", t.ExpiresAt, "duration", time.Since(start))
	return t, true, nil
}

// fetch runs Fetch, then Delegate if Fetch is nil or fails, with no cache
// and no lock (NoCache, or a memory-only Source).
func (s *Source) fetch(ctx context.Context, registry string) (Token, error) {
	err := errNoFetcher
	if s.Fetch != nil {
		start := time.Now()
		t, ferr := s.Fetch(ctx, registry)
		if ferr == nil {
			s.log().Debug("token fetched", "registry", t.Registry, "expires_at", t.ExpiresAt, "duration", time.Since(start))
			return t, nil
		}
		err = ferr
	}
	if s.Delegate != nil {
		return s.delegate(ctx, registry, err)
	}
	return Token{}, err
}

// delegate runs Delegate; why is the reason Fetch gave no token
// (errNoFetcher when there is no Fetch), for the log.
func (s *Source) delegate(ctx context.Context, registry string, why error) (Token, error) {
	log := s.log()
	if why != errNoFetcher {
		log.Debug("token fetch delegated", "registry", registry, "reason", why)
	}
	start := time.Now()
	t, err := s.Delegate(ctx, registry)
	if err != nil {
		return Token{}, err
	}
	log.Debug("token from delegate", "registry", t.Registry, "expires_at", t.ExpiresAt, "duration", time.Since(start))
	return t, nil
}

func (s *Source) recall(key string) (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.mem[key]
	return t, ok
}

func (s *Source) remember(key string, t Token) {
	s.mu.Lock()
	if s.mem == nil {
		s.mem = map[string]Token{}
	}
	s.mem[key] = t
	s.mu.Unlock()
}

// Forget drops host's tokens for every identity, from memory and from the
// file cache (docker logout). host is a token's Registry.
func (s *Source) Forget(host string) error {
	s.mu.Lock()
	for k, t := range s.mem {
		if t.Registry == host {
			delete(s.mem, k)
		}
	}
	s.mu.Unlock()
	if s.Cache.Dir == "" {
		return nil
	}
	return s.Cache.RemoveRegistry(host, s.log())
}

// Cached lists the tokens in the file cache that have not expired.
func (s *Source) Cached() []Token {
	if s.Cache.Dir == "" {
		return nil
	}
	now := s.now()
	var out []Token
	for _, t := range s.Cache.All(s.log()) {
		if t.Valid(now) {
			out = append(out, t)
		}
	}
	return out
}
