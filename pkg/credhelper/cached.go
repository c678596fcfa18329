package credhelper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/envtoken"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// FetcherName is the program the helper runs when the cache cannot answer.
// It holds the AWS SDK, which the helper itself does not link, so a warm
// get starts as fast as a Go program can.
const FetcherName = "ecrgate-fetch-token"

// CachedTokens answers from the shared token cache and runs Fetch on a miss.
type CachedTokens struct {
	Cache      tokencache.Cache
	Identities func(host string) tokencache.Identity
	Env        []string
	Margin     time.Duration // refresh inside this much of expiry (tokencache.DefaultMargin)
	NoCache    bool
	Now        func() time.Time
	// Fetch gets a token from AWS (and writes the cache) on a miss.
	Fetch func(ctx context.Context, registry string) (tokencache.Token, error)
	// Direct lets a miss be answered in this process when pkg/envtoken can
	// (access keys in the environment, a standard endpoint), before Fetch.
	Direct bool
	Log    *slog.Logger
}

var _ Tokens = (*CachedTokens)(nil)

func (c *CachedTokens) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *CachedTokens) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Token implements Tokens.
func (c *CachedTokens) Token(ctx context.Context, registry string) (tokencache.Token, error) {
	var id tokencache.Identity
	if c.Identities != nil {
		id = c.Identities(registry)
	}
	key := tokencache.Key(registry, id, c.Env)
	if !c.NoCache {
		if t, ok := c.Cache.Read(key, c.log()); ok && t.Usable(c.now(), c.margin()) {
			c.log().Debug("token from file cache", "registry", registry)
			return t, nil
		}
	}
	if c.Direct {
		if t, ok := c.direct(ctx, registry, id, key); ok {
			return t, nil
		}
	}
	return c.Fetch(ctx, registry)
}

func (c *CachedTokens) margin() time.Duration {
	if c.Margin > 0 {
		return c.Margin
	}
	return tokencache.DefaultMargin
}

// direct answers a miss without ecrgate-fetch-token when envtoken can,
// holding the cache lock as the fetcher does so that concurrent helpers
// make one call. ok is false when the fetcher must run: envtoken declined,
// or its call failed (the fetcher retries with the SDK and explains errors).
func (c *CachedTokens) direct(ctx context.Context, registry string, id tokencache.Identity, key string) (tokencache.Token, bool) {
	req, why := envtoken.For(registry, id, tokencache.EnvMap(c.Env))
	if req == nil {
		c.log().Debug("token fetch left to "+FetcherName, "registry", registry, "reason", why)
		return tokencache.Token{}, false
	}
	if !c.NoCache {
		unlock, err := c.Cache.Lock(ctx, key)
		if err != nil {
			c.log().Debug("token fetch left to "+FetcherName, "registry", registry, "reason", err)
			return tokencache.Token{}, false
		}
		defer unlock()
		if t, ok := c.Cache.Read(key, c.log()); ok && t.Usable(c.now(), c.margin()) {
			c.log().Debug("token from file cache after lock", "registry", registry)
			return t, true
		}
	}
	start := time.Now()
	t, err := req.Fetch(ctx, c.now)
	if err != nil {
		c.log().Debug("direct token fetch failed; running "+FetcherName, "registry", registry, "err", err)
		return tokencache.Token{}, false
	}
	if !t.Valid(c.now()) {
		return tokencache.Token{}, false
	}
	if !c.NoCache {
		if err := c.Cache.Write(key, t); err != nil {
			c.log().Warn("could not write the token cache", "err", err)
		}
	}
	c.log().Debug("token fetched", "registry", registry, "endpoint", req.Endpoint.Host, "expires_at", t.ExpiresAt, "duration", time.Since(start))
	return t, true
}

// Forget implements Tokens.
func (c *CachedTokens) Forget(registry string) error {
	return c.Cache.RemoveRegistry(registry, c.log())
}

// Cached implements Tokens.
func (c *CachedTokens) Cached() []tokencache.Token {
	now := c.now()
	var out []tokencache.Token
	for _, t := range c.Cache.All(c.log()) {
		if t.Valid(now) {
			out = append(out, t)
		}
	}
	return out
}

// FetcherPath finds ecrgate-fetch-token: $ECRGATE_FETCHER, else next to the
// running helper, else on PATH.
func FetcherPath(env []string) (string, error) {
	if p := tokencache.EnvMap(env)["ECRGATE_FETCHER"]; p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), FetcherName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(FetcherName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is not next to docker-credential-ecrgate nor on PATH: reinstall ecrgate (make install)", FetcherName)
}

// ExecFetcher runs the fetcher program for a registry: it prints the token
// as JSON on stdout (a private pipe), or one sentence and exits 1.
func ExecFetcher(path string, env []string) func(ctx context.Context, registry string) (tokencache.Token, error) {
	return func(ctx context.Context, registry string) (tokencache.Token, error) {
		var stdout bytes.Buffer
		cmd := exec.CommandContext(ctx, path, registry)
		cmd.Env = env
		cmd.Stdout = &stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stdout.String())
			var ee *exec.ExitError
			if msg != "" && errors.As(err, &ee) {
				return tokencache.Token{}, errors.New(msg)
			}
			return tokencache.Token{}, fmt.Errorf("run %s: %w", path, err)
		}
		var t tokencache.Token
		if err := json.Unmarshal(stdout.Bytes(), &t); err != nil || t.Password == "" {
			return tokencache.Token{}, fmt.Errorf("%s printed no token", path)
		}
		return t, nil
	}
}
