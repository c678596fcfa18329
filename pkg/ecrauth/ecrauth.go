// Package ecrauth is ecrgate's source of ECR registry tokens.
//
// A Source hands out the username and password for a registry host:
// GetAuthorizationToken at most once per (registry, AWS identity) per token
// lifetime, from a memory cache, then a file cache shared by every process
// of the user (so 50 credential helpers started at once make one API call),
// then the API. Tokens are refreshed when less than a margin of their life
// is left, and an expired token is never handed out.
//
// The cache key names the identity without resolving credentials — the
// registry's configured profile or role, else a hash of the access key id
// in the environment, else the web-identity role, else AWS_PROFILE — so a
// cache hit costs no AWS SDK work, and SSO or assumed-role credentials,
// which get new temporary keys in every process, still hit the cache.
package ecrauth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/ecrhost"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// DefaultMargin: see tokencache.DefaultMargin.
const DefaultMargin = tokencache.DefaultMargin

// Token is a registry credential (see tokencache.Token).
type Token = tokencache.Token

// Identity says which AWS identity to ask for a registry's token.
type Identity = tokencache.Identity

// Fetcher calls GetAuthorizationToken for reg as id.
type Fetcher interface {
	Fetch(ctx context.Context, reg ecrhost.Registry, id Identity) (Token, error)
}

// Options configure a Source.
type Options struct {
	// Fetcher gets tokens from AWS; default SDKFetcher.
	Fetcher Fetcher
	// Identities maps a registry host to its configured identity.
	Identities func(host string) Identity
	// CacheDir holds the file cache; "" disables it (memory only).
	CacheDir string
	// Env is the environment the identity key is derived from (os.Environ()).
	Env []string
	// Margin: refresh when less than this much life is left (DefaultMargin).
	Margin time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger (default: discard).
	Logger *slog.Logger
	// NoCache turns off both caches: every call goes to the API.
	NoCache bool
}

// Source hands out registry tokens. Safe for concurrent use.
type Source struct {
	opts  Options
	log   *slog.Logger
	group singleflight.Group
	mu    sync.Mutex
	mem   map[string]Token // key -> token
	keys  sync.Map         // registry string -> resolved
}

// New returns a Source.
func New(opts Options) *Source {
	if opts.Fetcher == nil {
		opts.Fetcher = &SDKFetcher{Env: opts.Env}
	}
	if opts.Identities == nil {
		opts.Identities = func(string) Identity { return Identity{} }
	}
	if opts.Margin <= 0 {
		opts.Margin = DefaultMargin
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{opts: opts, log: log, mem: map[string]Token{}}
}

// Token returns a token for registry (a host accepted by ecrhost.Parse).
func (s *Source) Token(ctx context.Context, registry string) (Token, error) {
	r, err := s.resolve(registry)
	if err != nil {
		return Token{}, err
	}
	reg, id, key := r.reg, r.id, r.key
	now := s.opts.Now()
	if !s.opts.NoCache {
		s.mu.Lock()
		t, ok := s.mem[key]
		s.mu.Unlock()
		if ok && t.Usable(now, s.opts.Margin) {
			s.log.Debug("token from memory", "registry", reg.Host)
			return t, nil
		}
	}
	v, err, _ := s.group.Do(key, func() (any, error) { return s.load(ctx, reg, id, key) })
	if err != nil {
		return Token{}, err
	}
	return v.(Token), nil
}

// load finds a token in the file cache or fetches one, under the file lock
// so that concurrent processes make one API call between them.
func (s *Source) load(ctx context.Context, reg ecrhost.Registry, id Identity, key string) (Token, error) {
	if s.opts.NoCache || s.opts.CacheDir == "" {
		t, err := s.opts.Fetcher.Fetch(ctx, reg, id)
		if err != nil {
			return Token{}, err
		}
		if !s.opts.NoCache {
			s.remember(key, t)
		}
		return t, nil
	}
	fc := tokencache.Cache{Dir: s.opts.CacheDir}
	if t, ok := fc.Read(key, s.log); ok && t.Usable(s.opts.Now(), s.opts.Margin) {
		s.log.Debug("token from file cache", "registry", reg.Host)
		s.remember(key, t)
		return t, nil
	}
	unlock, err := fc.Lock(ctx, key)
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	// Another process may have refreshed the token while we waited.
	cached, ok := fc.Read(key, s.log)
	if ok && cached.Usable(s.opts.Now(), s.opts.Margin) {
		s.log.Debug("token from file cache after lock", "registry", reg.Host)
		s.remember(key, cached)
		return cached, nil
	}
	t, err := s.opts.Fetcher.Fetch(ctx, reg, id)
	if err != nil {
		// A refresh inside the margin failed; the old token is still valid, so
		// use it rather than fail a push — but never an expired one.
		if ok && cached.Valid(s.opts.Now()) {
			s.log.Warn("token refresh failed; using the cached token until it expires",
				"registry", reg.Host, "expires_at", cached.ExpiresAt, "err", err)
			return cached, nil
		}
		return Token{}, err
	}
	if err := fc.Write(key, t); err != nil {
		s.log.Warn("could not write the token cache", "err", err)
	}
	s.remember(key, t)
	s.log.Debug("token fetched", "registry", reg.Host, "expires_at", t.ExpiresAt)
	return t, nil
}

// resolved is what a registry string means to the Source: the parsed host,
// its configured identity and its cache key.
type resolved struct {
	reg ecrhost.Registry
	id  Identity
	key string
}

// resolve parses registry and derives its identity and cache key once per
// registry string (identity and environment are fixed per Source): the
// proxy asks for a token on every request.
func (s *Source) resolve(registry string) (resolved, error) {
	if r, ok := s.keys.Load(registry); ok {
		return r.(resolved), nil
	}
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return resolved{}, err
	}
	id := s.opts.Identities(reg.Host)
	r := resolved{reg: reg, id: id, key: CacheKey(reg.Host, id, s.opts.Env)}
	s.keys.Store(registry, r)
	return r, nil
}

func (s *Source) remember(key string, t Token) {
	s.mu.Lock()
	s.mem[key] = t
	s.mu.Unlock()
}

// Forget drops registry's cached tokens for every identity (docker logout).
func (s *Source) Forget(registry string) error {
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for k, t := range s.mem {
		if t.Registry == reg.Host {
			delete(s.mem, k)
		}
	}
	s.mu.Unlock()
	if s.opts.CacheDir == "" {
		return nil
	}
	return tokencache.Cache{Dir: s.opts.CacheDir}.RemoveRegistry(reg.Host, s.log)
}

// Cached lists the registries that have an unexpired token in the file cache.
func (s *Source) Cached() []Token {
	if s.opts.CacheDir == "" {
		return nil
	}
	now := s.opts.Now()
	var out []Token
	for _, t := range (tokencache.Cache{Dir: s.opts.CacheDir}).All(s.log) {
		if t.Valid(now) {
			out = append(out, t)
		}
	}
	return out
}

// CacheKey names a (registry, identity) pair (tokencache.Key).
func CacheKey(host string, id Identity, env []string) string { return tokencache.Key(host, id, env) }

// DefaultCacheDir is where the helper and the proxy share cached tokens.
func DefaultCacheDir(env []string) string { return tokencache.DefaultDir(env) }

// ErrNoToken is wrapped by errors that mean AWS answered without a token.
var ErrNoToken = errors.New("no authorization token in the answer")
