package credhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/config"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/private"
	"github.com/ecrgate/ecrgate/pkg/tokencache"
)

// CacheDir is where tokens are cached (tokencache.DefaultDir).
func CacheDir(env []string) string { return tokencache.DefaultDir(env) }

// FromEnv builds the helper as docker-credential-ecrgate runs it: the
// config file (ECRGATE_CONFIG or the default path; see LoadConfig), the
// token cache (ECRGATE_DISABLE_CACHE=1 turns it off), ecrgate-fetch-token
// for misses, and the log (ECRGATE_LOG=path, ECRGATE_LOG_LEVEL; see
// OpenLog). The returned func closes the log.
func FromEnv(env []string, stderr io.Writer) (*Helper, func(), error) {
	e := environ.Map(env)
	cfg, warning, err := LoadConfig(Name, env, stderr)
	if err != nil {
		return nil, nil, err
	}
	log, closeLog, err := OpenLog(Name, env, stderr)
	if err != nil {
		return nil, nil, err
	}
	if warning != nil && e["ECRGATE_LOG"] != "" {
		log.Warn(warning.Error())
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
	shared := map[string]string{}
	for k, v := range cfg.SharedProxies {
		shared[strings.ToLower(k)] = v
	}
	return &Helper{Tokens: tokens, LocalHosts: local, SharedProxies: shared, Log: log, Stderr: stderr, LogErrors: e["ECRGATE_LOG"] != ""}, closeLog, nil
}

// LoadConfig loads the configuration as the helper and ecrgate-fetch-token
// read it (config.LoadTolerant): a file that other users could have
// written does not stop them, but its endpoint overrides are ignored, and
// one line on stderr, prefixed with name, says so and how to fix the file.
// That warning is also returned, for the log.
func LoadConfig(name string, env []string, stderr io.Writer) (cfg *config.Config, warning, err error) {
	cfg, warning, err = config.LoadTolerant("", env)
	if err != nil {
		return nil, nil, err
	}
	if warning != nil {
		fmt.Fprintf(stderr, "%s: warning: %v\n", name, warning)
	}
	return cfg, warning, nil
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
	v := environ.Map(env)["ECRGATE_DISABLE_CACHE"]
	return v == "1" || strings.EqualFold(v, "true")
}

// Name is the helper's program name, for the lines it writes on stderr.
const Name = "docker-credential-ecrgate"

// euid is the user the log file must belong to. A variable so that tests,
// which run as root, can pose as an ordinary user.
var euid = os.Geteuid

// OpenLog opens ECRGATE_LOG for appending, or logs warnings and errors to
// stderr when it is unset. The log file must be a regular file of the
// current user (root included) with one name and no access for its group
// and others; a new one is created 0600 (its directory 0700). A symbolic
// link there is not followed. A log that is not so is not used: the
// program logs nowhere and says why on stderr, in one line prefixed with
// name, rather than fail (or append to a file someone else chose).
func OpenLog(name string, env []string, stderr io.Writer) (*slog.Logger, func(), error) {
	e := environ.Map(env)
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
	f, err := openLog(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return slog.New(slog.DiscardHandler), func() {}, nil
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})).With("pid", os.Getpid()), func() { f.Close() }, nil
}

// MaxLogSize is the size past which the log file is rotated: the current
// file becomes <path>.1 (replacing the previous one), so the log never
// takes more than twice this.
const MaxLogSize = 1 << 20

// openLog opens the log file at path for appending, rotating it first when
// it is past MaxLogSize. Its errors are the sentence to print.
func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ECRGATE_LOG %s: cannot create its directory (%v): not logging there; point ECRGATE_LOG elsewhere", path, err)
	}
	f, st, err := openLogChecked(path)
	if err != nil || st.Size() <= MaxLogSize {
		return f, err
	}
	// Rename only the file just checked, never what replaced it since: a
	// rename moves a name and writes nothing, wherever <path>.1 points.
	if now, err := os.Lstat(path); err == nil && os.SameFile(st, now) {
		_ = os.Rename(path, path+".1")
	}
	f.Close()
	f, _, err = openLogChecked(path)
	return f, err
}

// openLogChecked opens path for appending without following a symbolic
// link there (openAppend) and checks the file it opened.
func openLogChecked(path string) (*os.File, os.FileInfo, error) {
	f, err := openAppend(path)
	if err != nil {
		if st, lerr := os.Lstat(path); lerr == nil {
			if p := private.File(path, st, euid()); p != nil && (p.Kind == private.Symlink || p.Kind == private.NotRegular) {
				return nil, nil, logRefusal(p) // O_NOFOLLOW's ELOOP, a FIFO's ENXIO
			}
		}
		return nil, nil, fmt.Errorf("ECRGATE_LOG %s: cannot open it (%v): not logging there; point ECRGATE_LOG elsewhere", path, unwrapPath(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("ECRGATE_LOG %s: %v: not logging there; point ECRGATE_LOG elsewhere", path, err)
	}
	uid := euid()
	p := private.File(path, st, uid)
	if p == nil {
		p = private.Owned(path, st, uid)
	}
	if p == nil {
		p = private.SingleLink(path, st)
	}
	if p != nil {
		f.Close()
		return nil, nil, logRefusal(p)
	}
	return f, st, nil
}

// logRefusal words why the log file at p.Path is not used.
func logRefusal(p *private.Problem) error {
	const not = "not logging there"
	switch p.Kind {
	case private.Symlink:
		return fmt.Errorf("ECRGATE_LOG %s is a symbolic link: %s; remove it or point ECRGATE_LOG elsewhere", p.Path, not)
	case private.NotRegular:
		return fmt.Errorf("ECRGATE_LOG %s is not a regular file: %s; point ECRGATE_LOG elsewhere", p.Path, not)
	case private.OtherOwner:
		return fmt.Errorf("ECRGATE_LOG %s belongs to user id %d, not to you (user id %d): %s; remove it or point ECRGATE_LOG elsewhere", p.Path, p.Owner, p.User, not)
	case private.Linked:
		return fmt.Errorf("ECRGATE_LOG %s has other names (hard links), so writing there would change another file: %s; remove it or point ECRGATE_LOG elsewhere", p.Path, not)
	}
	return fmt.Errorf("ECRGATE_LOG %s has mode %04o, so other users could read or change it: %s; run \"chmod 600 %s\" or point ECRGATE_LOG elsewhere", p.Path, p.Mode, not, p.Path)
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
