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
	"strings"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/envtoken"
	"github.com/ecrgate/ecrgate/pkg/sibling"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// FetcherName is the program the helper runs when the cache cannot answer.
// It holds the AWS SDK, which the helper itself does not link, so a warm
// get starts as fast as a Go program can.
const FetcherName = "ecrgate-fetch-token"

// CachedTokens answers from the shared token cache and runs Fetch on a
// miss: tokencache.Source's algorithm, with the direct fetch (if Direct)
// as its in-process fetch under the cache lock, and Fetch as its delegate,
// run without the lock since ecrgate-fetch-token takes it itself. Set the
// fields before the first call.
type CachedTokens struct {
	Cache      tokencache.Cache
	Identities func(host string) tokencache.Identity
	Env        []string
	Margin     time.Duration // refresh inside this much of expiry (tokencache.DefaultMargin)
	NoCache    bool
	Now        func() time.Time
	// Fetch gets a token from AWS (and writes the cache) on a miss. It runs
	// without the cache lock: ecrgate-fetch-token takes it.
	Fetch func(ctx context.Context, registry string) (tokencache.Token, error)
	// Direct lets a miss be answered in this process when pkg/envtoken can
	// (access keys in the environment, a standard endpoint), before Fetch.
	Direct bool
	Log    *slog.Logger

	once   sync.Once
	tokens *tokencache.Source
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

func (c *CachedTokens) identity(registry string) tokencache.Identity {
	if c.Identities != nil {
		return c.Identities(registry)
	}
	return tokencache.Identity{}
}

// source is the tokencache.Source over c's fields, made on the first call.
func (c *CachedTokens) source() *tokencache.Source {
	c.once.Do(func() {
		c.tokens = &tokencache.Source{
			Cache: c.Cache,
			Key: func(registry string) (string, error) {
				return tokencache.Key(registry, c.identity(registry), c.Env), nil
			},
			Delegate: c.Fetch,
			Margin:   c.Margin,
			Now:      c.now,
			NoCache:  c.NoCache,
			Log:      c.Log,
		}
		if c.Direct {
			c.tokens.Fetch = c.direct
		}
	})
	return c.tokens
}

// Token implements Tokens.
func (c *CachedTokens) Token(ctx context.Context, registry string) (tokencache.Token, error) {
	return c.source().Token(ctx, registry)
}

// direct answers a miss without ecrgate-fetch-token when envtoken can. The
// Source runs it holding the cache lock, as the fetcher does, so that
// concurrent helpers make one call. An error sends the Source on to Fetch:
// envtoken declined, or its call failed (the fetcher retries with the SDK
// and explains errors).
func (c *CachedTokens) direct(ctx context.Context, registry string) (tokencache.Token, error) {
	req, why := envtoken.For(registry, c.identity(registry), environ.Map(c.Env))
	if req == nil {
		c.log().Debug("token fetch left to "+FetcherName, "registry", registry, "reason", why)
		return tokencache.Token{}, errors.New(why)
	}
	t, err := req.Fetch(ctx, c.now)
	if err != nil {
		c.log().Debug("direct token fetch failed; running "+FetcherName, "registry", registry, "endpoint", req.Endpoint.Host, "err", err)
		return tokencache.Token{}, err
	}
	if !t.Valid(c.now()) {
		return tokencache.Token{}, fmt.Errorf("GetAuthorizationToken at %s answered with a token that expired at %s", req.Endpoint.Host, t.ExpiresAt)
	}
	return t, nil
}

// Forget implements Tokens.
func (c *CachedTokens) Forget(registry string) error {
	return c.source().Forget(registry)
}

// Cached implements Tokens.
func (c *CachedTokens) Cached() []tokencache.Token {
	return c.source().Cached()
}

// FetcherPath finds ecrgate-fetch-token: $ECRGATE_FETCHER, else next to the
// running helper, else on PATH.
func FetcherPath(env []string) (string, error) {
	p, err := sibling.Find(FetcherName, "ECRGATE_FETCHER", env)
	if err != nil {
		return "", fmt.Errorf("%s is not next to docker-credential-ecrgate nor on PATH: reinstall ecrgate (make install)", FetcherName)
	}
	return p, nil
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
