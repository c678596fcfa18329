// Package ecrauth is ecrgate's source of ECR registry tokens.
//
// A Source hands out the username and password for a registry host:
// GetAuthorizationToken at most once per (registry, AWS identity) per token
// lifetime, from a memory cache, then a file cache shared by every process
// of the user (so 50 credential helpers started at once make one API call),
// then the API: tokencache.Source's algorithm, with the AWS SDK as its
// fetch. Tokens are refreshed when less than a margin of their life is
// left, and an expired token is never handed out.
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

// Source hands out registry tokens: tokencache.Source's algorithm with
// the Fetcher as its fetch. Safe for concurrent use.
type Source struct {
	opts   Options
	tokens *tokencache.Source
	keys   sync.Map // registry string -> resolved
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
	s := &Source{opts: opts}
	s.tokens = &tokencache.Source{
		Cache: tokencache.Cache{Dir: opts.CacheDir},
		Key: func(registry string) (string, error) {
			r, err := s.resolve(registry)
			return r.key, err
		},
		Fetch:   s.fetch,
		Margin:  opts.Margin,
		Now:     opts.Now,
		NoCache: opts.NoCache,
		Log:     log,
	}
	return s
}

// Token returns a token for registry (a host accepted by ecrhost.Parse).
func (s *Source) Token(ctx context.Context, registry string) (Token, error) {
	return s.tokens.Token(ctx, registry)
}

// fetch calls GetAuthorizationToken for registry as its identity.
func (s *Source) fetch(ctx context.Context, registry string) (Token, error) {
	r, err := s.resolve(registry)
	if err != nil {
		return Token{}, err
	}
	return s.opts.Fetcher.Fetch(ctx, r.reg, r.id)
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

// Forget drops registry's cached tokens for every identity (docker logout).
func (s *Source) Forget(registry string) error {
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return err
	}
	return s.tokens.Forget(reg.Host)
}

// Cached lists the registries that have an unexpired token in the file cache.
func (s *Source) Cached() []Token { return s.tokens.Cached() }

// CacheKey names a (registry, identity) pair (tokencache.Key).
func CacheKey(host string, id Identity, env []string) string { return tokencache.Key(host, id, env) }

// DefaultCacheDir is where the helper and the proxy share cached tokens.
func DefaultCacheDir(env []string) string { return tokencache.DefaultDir(env) }

// ErrNoToken is wrapped by errors that mean AWS answered without a token.
var ErrNoToken = errors.New("no authorization token in the answer")
