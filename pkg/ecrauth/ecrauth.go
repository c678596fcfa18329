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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ecrgate/ecrgate/pkg/awsconf"
	"github.com/ecrgate/ecrgate/pkg/ecrhost"
)

// DefaultMargin is how much life a cached token must have left to be used
// without a refresh: docker asks once per push and uses the token for the
// whole push, so an hour covers long pushes of large images.
const DefaultMargin = time.Hour

// Token is a registry credential. Its LogValue redacts the password, so a
// token cannot be logged by accident.
type Token struct {
	Registry  string    `json:"registry"`
	Username  string    `json:"username"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("registry", t.Registry), slog.String("username", t.Username),
		slog.String("password", "REDACTED"), slog.Time("expires_at", t.ExpiresAt))
}

// String keeps fmt from printing the password either.
func (t Token) String() string {
	return fmt.Sprintf("token for %s (user %s, expires %s)", t.Registry, t.Username, t.ExpiresAt.Format(time.RFC3339))
}

// usable reports whether t may be handed out at now without a refresh.
func (t Token) usable(now time.Time, margin time.Duration) bool {
	return t.Password != "" && now.Add(margin).Before(t.ExpiresAt)
}

// valid reports whether t has not expired at now.
func (t Token) valid(now time.Time) bool { return t.Password != "" && now.Before(t.ExpiresAt) }

// Identity says which AWS identity to ask for a registry's token, as
// configured for that registry (all fields optional).
type Identity = awsconf.Identity

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
	reg, err := ecrhost.Parse(registry)
	if err != nil {
		return Token{}, err
	}
	id := s.opts.Identities(reg.Host)
	key := CacheKey(reg.Host, id, s.opts.Env)
	now := s.opts.Now()
	if !s.opts.NoCache {
		s.mu.Lock()
		t, ok := s.mem[key]
		s.mu.Unlock()
		if ok && t.usable(now, s.opts.Margin) {
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
	fc := fileCache{dir: s.opts.CacheDir}
	if t, ok := fc.read(key, s.log); ok && t.usable(s.opts.Now(), s.opts.Margin) {
		s.log.Debug("token from file cache", "registry", reg.Host)
		s.remember(key, t)
		return t, nil
	}
	unlock, err := fc.lock(ctx, key)
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	// Another process may have refreshed the token while we waited.
	cached, ok := fc.read(key, s.log)
	if ok && cached.usable(s.opts.Now(), s.opts.Margin) {
		s.log.Debug("token from file cache after lock", "registry", reg.Host)
		s.remember(key, cached)
		return cached, nil
	}
	t, err := s.opts.Fetcher.Fetch(ctx, reg, id)
	if err != nil {
		// A refresh inside the margin failed; the old token is still valid, so
		// use it rather than fail a push — but never an expired one.
		if ok && cached.valid(s.opts.Now()) {
			s.log.Warn("token refresh failed; using the cached token until it expires",
				"registry", reg.Host, "expires_at", cached.ExpiresAt, "err", err)
			return cached, nil
		}
		return Token{}, err
	}
	if err := fc.write(key, t); err != nil {
		s.log.Warn("could not write the token cache", "err", err)
	}
	s.remember(key, t)
	s.log.Debug("token fetched", "registry", reg.Host, "expires_at", t.ExpiresAt)
	return t, nil
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
	return fileCache{dir: s.opts.CacheDir}.removeRegistry(reg.Host, s.log)
}

// Cached lists the registries that have an unexpired token in the file cache.
func (s *Source) Cached() []Token {
	if s.opts.CacheDir == "" {
		return nil
	}
	now := s.opts.Now()
	var out []Token
	for _, t := range (fileCache{dir: s.opts.CacheDir}).all(s.log) {
		if t.valid(now) {
			out = append(out, t)
		}
	}
	return out
}

// CacheKey names a (registry, identity) pair without secrets and without
// resolving credentials. It follows the AWS SDK's own precedence: a
// configured profile, then access keys in the environment, then a web
// identity token, then AWS_PROFILE (or "default"). The control-plane
// endpoint is part of the key so an emulator's tokens never mix with AWS's.
func CacheKey(host string, id Identity, env []string) string {
	e := envMap(env)
	var who string
	switch {
	case id.Profile != "":
		who = "profile=" + id.Profile
	case e["AWS_ACCESS_KEY_ID"] != "" && e["AWS_SECRET_ACCESS_KEY"] != "":
		sum := sha256.Sum256([]byte(e["AWS_ACCESS_KEY_ID"]))
		who = "akid-sha256=" + hex.EncodeToString(sum[:8])
	case e["AWS_WEB_IDENTITY_TOKEN_FILE"] != "":
		who = "web-identity=" + e["AWS_ROLE_ARN"]
	case e["AWS_PROFILE"] != "":
		who = "profile=" + e["AWS_PROFILE"]
	default:
		who = "profile=default"
	}
	endpoint := id.APIEndpoint
	if endpoint == "" {
		endpoint = e["AWS_ENDPOINT_URL_ECR"]
		if reg, err := ecrhost.Parse(host); err == nil && reg.Public {
			endpoint = e["AWS_ENDPOINT_URL_ECR_PUBLIC"]
		}
	}
	if endpoint == "" {
		endpoint = e["AWS_ENDPOINT_URL"]
	}
	return strings.Join([]string{"v1", host, who, "role=" + id.RoleARN, "endpoint=" + endpoint}, "|")
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// ErrNoToken is wrapped by errors that mean AWS answered without a token.
var ErrNoToken = errors.New("no authorization token in the answer")
