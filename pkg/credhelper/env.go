package credhelper

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/ecrauth"
)

// CacheDir is where tokens are cached (ecrauth.DefaultCacheDir).
func CacheDir(env []string) string { return ecrauth.DefaultCacheDir(env) }

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// FromEnv builds the helper as docker-credential-ecrgate runs it: the
// config file (ECRGATE_CONFIG or the default path), the token cache
// (ECRGATE_DISABLE_CACHE=1 turns it off) and the log (ECRGATE_LOG=path,
// ECRGATE_LOG_LEVEL). The returned func closes the log.
func FromEnv(env []string, stderr io.Writer) (*Helper, func(), error) {
	e := envMap(env)
	cfg, err := config.Load("", env)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog, err := openLog(e, stderr)
	if err != nil {
		return nil, nil, err
	}
	noCache := e["ECRGATE_DISABLE_CACHE"] == "1" || strings.EqualFold(e["ECRGATE_DISABLE_CACHE"], "true")
	src := ecrauth.New(ecrauth.Options{
		CacheDir: CacheDir(env),
		NoCache:  noCache,
		Env:      env,
		Logger:   log,
		Identities: func(host string) ecrauth.Identity {
			r, ok := cfg.RegistryConfig(host)
			if !ok {
				return ecrauth.Identity{}
			}
			return ecrauth.Identity{Profile: r.Profile, RoleARN: r.RoleARN, APIEndpoint: r.APIEndpoint}
		},
	})
	local := map[string]string{}
	for k, v := range cfg.LocalHosts {
		local[strings.ToLower(k)] = v
	}
	return &Helper{Source: src, LocalHosts: local, Log: log, Stderr: stderr, LogErrors: e["ECRGATE_LOG"] != ""}, closeLog, nil
}

// openLog opens ECRGATE_LOG for appending (0600, directory 0700), or logs
// warnings and errors to stderr when it is unset.
func openLog(e map[string]string, stderr io.Writer) (*slog.Logger, func(), error) {
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
