// Package tokencache is the registry-token cache that the credential helper
// and the proxy share: one 0600 JSON file per (registry, identity) key in a
// 0700 directory, replaced atomically, guarded by a lock file per key
// (pkg/filelock), and Source, the one algorithm over it (memory, file,
// lock, re-check, fetch, write, still-valid fallback) given a fetch
// function. It links no AWS SDK, so the credential helper's warm path
// starts fast.
package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/filelock"
	"github.com/ecrgate/ecrgate/pkg/private"
)

// Cache keeps one JSON file per cache key in dir (0700), each file 0600
// and replaced atomically. A file that does not parse, or belongs to another
// key, is ignored and later overwritten: never a crash. A directory or file
// that another user could read or write is refused, never repaired: Read
// reports a miss (and logs why) and Lock and Write fail with an error that
// wraps ErrNotPrivate and names the path and the chmod that fixes it.
type Cache struct{ Dir string }

// ErrNotPrivate is wrapped by the errors for a cache directory or file that
// other users may read or replace, or that belongs to another user.
var ErrNotPrivate = errors.New("the token cache is not private to you")

type cacheEntry struct {
	Key   string `json:"key"`
	Token Token  `json:"token"`
}

// errSymlink is openNoFollow's error for a symbolic link at the path.
var errSymlink = errors.New("a symbolic link")

// maxCacheFile bounds what is read from a cache file.
const maxCacheFile = 64 << 10

// lockTimeout bounds the wait for another process's refresh (pkg/filelock).
const lockTimeout = 30 * time.Second

func (c Cache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".json")
}

// ensureDir creates the cache directory (0700; on Windows, an access
// control list for the current user and SYSTEM alone, private.Restrict) if
// needed and checks that it is private. An existing directory keeps its
// mode: a loose one is refused, not tightened, since tokens in it may
// already have been read.
func (c Cache) ensureDir() error {
	_, statErr := os.Stat(c.Dir)
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("create token cache %s: %w", c.Dir, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := private.Restrict(c.Dir); err != nil {
			return fmt.Errorf("create token cache %s: %w", c.Dir, err)
		}
	}
	return c.checkDir()
}

func (c Cache) checkDir() error {
	if err := checkDir(c.Dir); err != nil {
		return fmt.Errorf("%w: %w", ErrNotPrivate, err)
	}
	return nil
}

// readEntry reads one cache file; it does not follow a symbolic link and
// refuses a file that is not private (wrapping ErrNotPrivate).
func readEntry(path string) (cacheEntry, error) {
	var e cacheEntry
	f, err := openNoFollow(path)
	if err != nil {
		if errors.Is(err, errSymlink) {
			return e, fmt.Errorf("%w: token cache file %s is a symbolic link, not a regular file: remove it (ecrgate writes a new one)", ErrNotPrivate, path)
		}
		return e, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return e, err
	}
	if err := checkFile(path, st); err != nil {
		return e, fmt.Errorf("%w: %w", ErrNotPrivate, err)
	}
	b := make([]byte, maxCacheFile+1)
	n, err := f.Read(b)
	if err != nil {
		return e, err
	}
	if n > maxCacheFile {
		return e, errors.New("cache file too large")
	}
	if err := json.Unmarshal(b[:n], &e); err != nil {
		return e, err
	}
	return e, nil
}

// Read returns the cached token for key. A missing, unreadable or foreign
// file is a miss; so is a directory or file that is not private, which is
// logged as a warning (Lock and Write then fail with the reason).
func (c Cache) Read(key string, log *slog.Logger) (Token, bool) {
	if err := c.checkDir(); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("not using the token cache", "err", err)
		}
		return Token{}, false
	}
	p := c.path(key)
	e, err := readEntry(p)
	if err != nil {
		switch {
		case errors.Is(err, ErrNotPrivate):
			log.Warn("not using the token cache", "err", err)
		case !errors.Is(err, os.ErrNotExist):
			log.Debug("ignoring unreadable token cache file", "file", p, "err", err)
		}
		return Token{}, false
	}
	if e.Key != key || e.Token.Password == "" {
		log.Debug("ignoring foreign token cache file", "file", p)
		return Token{}, false
	}
	return e.Token, true
}

// Write replaces key's cache file (0600) atomically. It fails, wrapping
// ErrNotPrivate, when the directory is not private.
func (c Cache) Write(key string, t Token) error {
	if err := c.ensureDir(); err != nil {
		return err
	}
	b, err := json.Marshal(cacheEntry{Key: key, Token: t})
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path(key), b, 0o600)
}

// Lock takes the exclusive lock for key (pkg/filelock), waiting for
// another holder at most lockTimeout. The lock is released when the
// returned func is called or the process exits. It fails, wrapping
// ErrNotPrivate, when the directory or key's cache file is not private:
// the caller (Source, which locks before it fetches) then reports that
// instead of fetching a token into it.
func (c Cache) Lock(ctx context.Context, key string) (func(), error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	if err := checkExisting(c.path(key)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotPrivate, err)
	}
	p := strings.TrimSuffix(c.path(key), ".json") + ".lock"
	unlock, err := filelock.Lock(ctx, p, lockTimeout)
	var pe *fs.PathError
	switch {
	case err == nil:
		return unlock, nil
	case errors.Is(err, filelock.ErrTimeout):
		return nil, fmt.Errorf("lock token cache: another ecrgate process held %s for %s", p, lockTimeout)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, ctx.Err()
	case errors.As(err, &pe):
		return nil, fmt.Errorf("open token cache lock: %w", err)
	}
	return nil, fmt.Errorf("lock token cache: %w", err)
}

// entries reads every valid cache file. A directory that is not private
// yields none and the error; a missing one none and no error.
func (c Cache) entries(log *slog.Logger) (map[string]cacheEntry, error) {
	out := map[string]cacheEntry{}
	if err := c.checkDir(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		log.Warn("not using the token cache", "err", err)
		return out, err
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.json"))
	for _, f := range files {
		e, err := readEntry(f)
		if err != nil || e.Key == "" || c.path(e.Key) != f {
			log.Debug("ignoring foreign token cache file", "file", f)
			continue
		}
		out[f] = e
	}
	return out, nil
}

// All returns every cached token (none when the directory is not private).
func (c Cache) All(log *slog.Logger) []Token {
	var out []Token
	entries, _ := c.entries(log)
	for _, e := range entries {
		out = append(out, e.Token)
	}
	return out
}

// RemoveRegistry removes host's cached tokens for every identity. It fails,
// wrapping ErrNotPrivate, when the directory is not private.
func (c Cache) RemoveRegistry(host string, log *slog.Logger) error {
	entries, err := c.entries(log)
	errs := []error{err}
	for f, e := range entries {
		if e.Token.Registry == host {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// writeFileAtomic replaces path without fsync: this is a cache, and a file
// torn by a crash is ignored and fetched again, so durability is not worth
// ~2 ms per write.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.WriteFile(path, data, mode, false); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// DefaultDir is where the helper and the proxy share cached tokens:
// $XDG_CACHE_HOME/ecrgate/tokens, XDG_CACHE_HOME defaulting to ~/.cache;
// on Windows, where HOME is usually unset, it defaults to %LOCALAPPDATA%
// (%LOCALAPPDATA%\ecrgate\tokens) instead.
func DefaultDir(env []string) string { return defaultDir(runtime.GOOS, env) }

// defaultDir is DefaultDir for the operating system goos.
func defaultDir(goos string, env []string) string {
	e := environ.Map(env)
	base := e["XDG_CACHE_HOME"]
	if base == "" || !filepath.IsAbs(base) {
		base = filepath.Join(e["HOME"], ".cache")
		if l := e["LOCALAPPDATA"]; goos == "windows" && filepath.IsAbs(l) {
			base = l
		}
	}
	return filepath.Join(base, "ecrgate", "tokens")
}
