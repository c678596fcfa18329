// Package tokencache is the registry-token cache that the credential helper
// and the proxy share: one 0600 JSON file per (registry, identity) key in a
// 0700 directory, replaced atomically, guarded by a lock file per key. It
// links no AWS SDK, so the credential helper's warm path starts fast.
package tokencache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
)

// Cache keeps one JSON file per cache key in dir (0700), each file 0600
// and replaced atomically. A file that does not parse, or belongs to another
// key, is ignored and later overwritten: never a crash.
type Cache struct{ Dir string }

type cacheEntry struct {
	Key   string `json:"key"`
	Token Token  `json:"token"`
}

// maxCacheFile bounds what is read from a cache file.
const maxCacheFile = 64 << 10

// lockTimeout bounds the wait for another process's refresh.
const lockTimeout = 30 * time.Second

func (c Cache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.Dir, hex.EncodeToString(sum[:16])+".json")
}

func (c Cache) ensureDir() error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("create token cache %s: %w", c.Dir, err)
	}
	// MkdirAll keeps an existing directory's mode; tokens need 0700.
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return fmt.Errorf("restrict token cache %s: %w", c.Dir, err)
	}
	return nil
}

func readEntry(path string) (cacheEntry, error) {
	var e cacheEntry
	f, err := os.Open(path)
	if err != nil {
		return e, err
	}
	defer f.Close()
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

func (c Cache) Read(key string, log *slog.Logger) (Token, bool) {
	p := c.path(key)
	e, err := readEntry(p)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
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

// lock takes the exclusive lock for key, waiting for another holder at most
// lockTimeout. The lock is released when the returned func is called or the
// process exits.
func (c Cache) Lock(ctx context.Context, key string) (func(), error) {
	if err := c.ensureDir(); err != nil {
		return nil, err
	}
	p := strings.TrimSuffix(c.path(key), ".json") + ".lock"
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open token cache lock: %w", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock token cache: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock token cache: another ecrgate process held %s for %s", p, lockTimeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (c Cache) entries(log *slog.Logger) map[string]cacheEntry {
	out := map[string]cacheEntry{}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "*.json"))
	for _, f := range files {
		e, err := readEntry(f)
		if err != nil || e.Key == "" || c.path(e.Key) != f {
			log.Debug("ignoring foreign token cache file", "file", f)
			continue
		}
		out[f] = e
	}
	return out
}

func (c Cache) All(log *slog.Logger) []Token {
	var out []Token
	for _, e := range c.entries(log) {
		out = append(out, e.Token)
	}
	return out
}

func (c Cache) RemoveRegistry(host string, log *slog.Logger) error {
	var errs []error
	for f, e := range c.entries(log) {
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
// $XDG_CACHE_HOME/ecrgate/tokens, XDG_CACHE_HOME defaulting to ~/.cache.
func DefaultDir(env []string) string {
	e := EnvMap(env)
	base := e["XDG_CACHE_HOME"]
	if base == "" || !filepath.IsAbs(base) {
		base = filepath.Join(e["HOME"], ".cache")
	}
	return filepath.Join(base, "ecrgate", "tokens")
}
