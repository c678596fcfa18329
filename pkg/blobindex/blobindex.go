// Package blobindex remembers, per registry, which repositories hold a
// blob: the blobs ecrgate has seen pushed, mounted or pulled successfully.
// The proxy asks it where a layer a pusher is about to upload may be
// mounted from instead (#16). It is bounded (entries, and bytes of its
// file), least recently used out, kept in one 0600 file written
// atomically, and safe for concurrent use. What it says is a hint: the
// proxy confirms every answer with the registry before acting on it.
package blobindex

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ecrgate/ecrgate/pkg/atomicfile"
	"github.com/ecrgate/ecrgate/pkg/environ"
	"github.com/ecrgate/ecrgate/pkg/private"
)

// Defaults of Options.
const (
	DefaultMaxEntries    = 100_000
	DefaultMaxFileBytes  = 16 << 20
	DefaultMaxRepos      = 8
	DefaultFlushInterval = 10 * time.Second
	fileVersion          = 1
)

// Options configure an Index.
type Options struct {
	// Path is the index file; "" keeps the index in memory only.
	Path string
	// MaxEntries bounds the blobs remembered, all registries together
	// (default DefaultMaxEntries).
	MaxEntries int
	// MaxFileBytes bounds the size of the file, approximately (default
	// DefaultMaxFileBytes).
	MaxFileBytes int
	// MaxRepos bounds the repositories remembered per blob, the most
	// recently seen kept (default DefaultMaxRepos).
	MaxRepos int
	// FlushInterval is how often changes are written to Path (default
	// DefaultFlushInterval); Close writes what is left.
	FlushInterval time.Duration
	// Logger gets a warning when the file cannot be read or written.
	Logger *slog.Logger
}

// DefaultPath is the index file beside the audit log:
// $XDG_STATE_HOME/ecrgate/blobs.json, XDG_STATE_HOME defaulting to
// ~/.local/state; "" when neither is set.
func DefaultPath(env []string) string {
	base := environ.Get(env, "XDG_STATE_HOME")
	if !filepath.IsAbs(base) {
		h := environ.Get(env, "HOME")
		if h == "" {
			return ""
		}
		base = filepath.Join(h, ".local", "state")
	}
	return filepath.Join(base, "ecrgate", "blobs.json")
}

// Entry is what the index knows of one blob in one registry.
type Entry struct {
	Registry string   `json:"registry"`
	Digest   string   `json:"digest"`
	Size     int64    `json:"size"`
	Repos    []string `json:"repos"` // most recently seen first
}

// cost approximates the bytes e takes in the file.
func (e *Entry) cost() int {
	n := len(e.Registry) + len(e.Digest) + 64
	for _, r := range e.Repos {
		n += len(r) + 3
	}
	return n
}

type key struct{ registry, digest string }

// Index is the blob index. Its methods are safe for concurrent use.
type Index struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	ll    *list.List // of *Entry, most recently used at the front
	m     map[key]*list.Element
	bytes int
	dirty bool

	stop chan struct{}
	done chan struct{}
}

// Open returns the index, loaded from o.Path when it exists. A file that
// cannot be read, is not the user's alone, or does not parse is set
// aside with a warning: the index starts empty (it is only a hint), and
// the next write replaces the file.
func Open(o Options) *Index {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxRepos <= 0 {
		o.MaxRepos = DefaultMaxRepos
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	x := &Index{o: o, log: o.Logger, ll: list.New(), m: map[key]*list.Element{}}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	if o.Path != "" {
		if err := x.load(); err != nil {
			x.log.Warn("blob index not loaded; starting empty", "path", o.Path, "err", err)
		}
		x.stop, x.done = make(chan struct{}), make(chan struct{})
		go x.flusher()
	}
	return x
}

type file struct {
	Version int      `json:"version"`
	Entries []*Entry `json:"entries"` // least recently used first
}

func (x *Index) load() error {
	st, err := os.Lstat(x.o.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if p := private.File(x.o.Path, st, os.Geteuid()); p != nil {
		return p
	}
	if st.Size() > int64(x.o.MaxFileBytes)*2 {
		return fmt.Errorf("%s is %d bytes, more than the index ever writes", x.o.Path, st.Size())
	}
	b, err := os.ReadFile(x.o.Path)
	if err != nil {
		return err
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w", x.o.Path, err)
	}
	if f.Version != fileVersion {
		return fmt.Errorf("%s: version %d, want %d", x.o.Path, f.Version, fileVersion)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range f.Entries {
		if e == nil || e.Registry == "" || e.Digest == "" || len(e.Repos) == 0 {
			continue
		}
		for _, r := range slices.Backward(e.Repos) {
			x.addLocked(e.Registry, r, e.Digest, e.Size)
		}
	}
	x.dirty = false
	return nil
}

// Add records that repo of registry holds the blob digest of size bytes
// (size < 0: unknown, keep what is known).
func (x *Index) Add(registry, repo, digest string, size int64) {
	if registry == "" || repo == "" || digest == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(registry, repo, digest, size)
}

func (x *Index) addLocked(registry, repo, digest string, size int64) {
	k := key{registry, digest}
	if el, ok := x.m[k]; ok {
		e := el.Value.(*Entry)
		x.bytes -= e.cost()
		if i := slices.Index(e.Repos, repo); i >= 0 {
			e.Repos = slices.Delete(e.Repos, i, i+1)
		}
		e.Repos = slices.Insert(e.Repos, 0, repo)
		if len(e.Repos) > x.o.MaxRepos {
			e.Repos = e.Repos[:x.o.MaxRepos]
		}
		if size >= 0 {
			e.Size = size
		}
		x.bytes += e.cost()
		x.ll.MoveToFront(el)
	} else {
		e := &Entry{Registry: registry, Digest: digest, Size: size, Repos: []string{repo}}
		x.m[k] = x.ll.PushFront(e)
		x.bytes += e.cost()
	}
	x.dirty = true
	for x.ll.Len() > x.o.MaxEntries || x.bytes > x.o.MaxFileBytes {
		x.removeLocked(x.ll.Back())
	}
}

func (x *Index) removeLocked(el *list.Element) {
	e := el.Value.(*Entry)
	x.ll.Remove(el)
	delete(x.m, key{e.Registry, e.Digest})
	x.bytes -= e.cost()
	x.dirty = true
}

// Lookup returns the repositories of registry known to hold digest, most
// recently seen first, and the blob's size (-1 if unknown); it counts as
// a use.
func (x *Index) Lookup(registry, digest string) (repos []string, size int64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	el, ok := x.m[key{registry, digest}]
	if !ok {
		return nil, -1, false
	}
	x.ll.MoveToFront(el)
	e := el.Value.(*Entry)
	return slices.Clone(e.Repos), e.Size, true
}

// Forget records that repo of registry no longer holds digest.
func (x *Index) Forget(registry, repo, digest string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	el, ok := x.m[key{registry, digest}]
	if !ok {
		return
	}
	e := el.Value.(*Entry)
	i := slices.Index(e.Repos, repo)
	if i < 0 {
		return
	}
	if len(e.Repos) == 1 {
		x.removeLocked(el)
		return
	}
	x.bytes -= e.cost()
	e.Repos = slices.Delete(e.Repos, i, i+1)
	x.bytes += e.cost()
	x.dirty = true
}

// Len returns the number of blobs remembered.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ll.Len()
}

// Flush writes the index to its file if it changed since the last write.
func (x *Index) Flush() error {
	if x.o.Path == "" {
		return nil
	}
	x.mu.Lock()
	if !x.dirty {
		x.mu.Unlock()
		return nil
	}
	f := file{Version: fileVersion, Entries: make([]*Entry, 0, x.ll.Len())}
	for el := x.ll.Back(); el != nil; el = el.Prev() {
		e := *el.Value.(*Entry)
		e.Repos = slices.Clone(e.Repos)
		f.Entries = append(f.Entries, &e)
	}
	x.dirty = false
	x.mu.Unlock()
	b, err := json.Marshal(f)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(x.o.Path), 0o700)
	}
	if err == nil {
		err = atomicfile.WriteFile(x.o.Path, b, 0o600, false)
	}
	if err != nil {
		x.mu.Lock()
		x.dirty = true
		x.mu.Unlock()
		return fmt.Errorf("write blob index %s: %w", x.o.Path, err)
	}
	return nil
}

func (x *Index) flusher() {
	defer close(x.done)
	t := time.NewTicker(x.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := x.Flush(); err != nil {
				x.log.Warn("blob index not saved", "err", err)
			}
		case <-x.stop:
			return
		}
	}
}

// Close stops the periodic writes and writes what changed.
func (x *Index) Close() error {
	if x == nil || x.stop == nil {
		return nil
	}
	select {
	case <-x.stop:
		return nil
	default:
	}
	close(x.stop)
	<-x.done
	return x.Flush()
}
