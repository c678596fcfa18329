package credhelper

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// CacheDir is where tokens are cached (tokencache.DefaultDir).
func CacheDir(env []string) string { return tokencache.DefaultDir(env) }

// FromEnv builds the helper as docker-credential-ecrgate runs it: the
// config file (ECRGATE_CONFIG or the default path), the token cache
// (ECRGATE_DISABLE_CACHE=1 turns it off), ecrgate-fetch-token for misses,
// and the log (ECRGATE_LOG=path, ECRGATE_LOG_LEVEL). The returned func
// closes the log.
func FromEnv(env []string, stderr io.Writer) (*Helper, func(), error) {
	e := tokencache.EnvMap(env)
	cfg, err := config.Load("", env)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog, err := OpenLog(env, stderr)
	if err != nil {
		return nil, nil, err
	}
	// Only a cache miss needs the fetcher: find it then, not on every get.
	fetch := func(ctx context.Context, registry string) (tokencache.Token, error) {
		path, err := FetcherPath(env)
		if err != nil {
			return tokencache.Token{}, err
		}
		return ExecFetcher(path, env)(ctx, registry)
	}
	tokens := &CachedTokens{
		Cache:      tokencache.Cache{Dir: CacheDir(env)},
		Identities: Identities(cfg),
		Env:        env,
		NoCache:    NoCache(env),
		Fetch:      fetch,
		Direct:     e["ECRGATE_DIRECT_FETCH"] != "0",
		Log:        log,
	}
	local := map[string]string{}
	for k, v := range cfg.LocalHosts {
		local[strings.ToLower(k)] = v
	}
	return &Helper{Tokens: tokens, LocalHosts: local, Log: log, Stderr: stderr, LogErrors: e["ECRGATE_LOG"] != ""}, closeLog, nil
}

// Identities maps a registry host to the identity the config gives it.
func Identities(cfg *config.Config) func(host string) tokencache.Identity {
	return func(host string) tokencache.Identity {
		r, ok := cfg.RegistryConfig(host)
		if !ok {
			return tokencache.Identity{}
		}
		return tokencache.Identity{Profile: r.Profile, RoleARN: r.RoleARN, APIEndpoint: r.APIEndpoint}
	}
}

// NoCache reports ECRGATE_DISABLE_CACHE=1 (or true).
func NoCache(env []string) bool {
	v := tokencache.EnvMap(env)["ECRGATE_DISABLE_CACHE"]
	return v == "1" || strings.EqualFold(v, "true")
}

// OpenLog opens ECRGATE_LOG for appending (0600, directory 0700), or logs
// warnings and errors to stderr when it is unset.
func OpenLog(env []string, stderr io.Writer) (*slog.Logger, func(), error) {
	e := tokencache.EnvMap(env)
	level := slog.LevelWarn
	if s := e["ECRGATE_LOG_LEVEL"]; s != "" {
		if err := level.UnmarshalText([]byte(s)); err != nil {
			return nil, nil, fmt.Errorf("ECRGATE_LOG_LEVEL %q: want debug, info, warn or error", s)
		}
	}
	path := e["ECRGATE_LOG"]
	if path == "" {
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("ECRGATE_LOG: %w", err)
	}
	rotate(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("ECRGATE_LOG: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})).With("pid", os.Getpid()), func() { f.Close() }, nil
}

// MaxLogSize is the size past which the log file is rotated: the current
// file becomes <path>.1 (replacing the previous one), so the log never
// takes more than twice this.
const MaxLogSize = 1 << 20

func rotate(path string) {
	if st, err := os.Stat(path); err == nil && st.Size() > MaxLogSize {
		_ = os.Rename(path, path+".1")
	}
}
