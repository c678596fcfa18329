// Package atomicfile writes files so that readers see the old content or
// the new, never a mix: a temporary file in the same directory, its mode
// set before any data, then renamed (or linked) into place.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ecrgate/ecrgate/pkg/private"
)

// WriteTemp writes data to a new temporary file beside path with mode perm,
// fsynced when durable, closed, and returns its name. The caller renames or
// removes it. A perm that lets neither group nor others in (0600) also
// makes the file the current user's alone on Windows (private.Restrict),
// before any data is written.
func WriteTemp(path string, data []byte, perm fs.FileMode, durable bool) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if perm&0o077 == 0 {
		if err := private.Restrict(name); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// WriteFile replaces path with data, mode perm. durable fsyncs the data
// first: worth it for files whose loss matters, not for caches.
func WriteFile(path string, data []byte, perm fs.FileMode, durable bool) error {
	tmp, err := WriteTemp(path, data, perm, durable)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Create creates path with data and mode perm, durably; it fails with an
// error wrapping fs.ErrExist if path exists, even when another process
// creates it at the same moment (a hard link never replaces its target).
func Create(path string, data []byte, perm fs.FileMode) error {
	tmp, err := WriteTemp(path, data, perm, true)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	// A file system without hard links: check, then rename.
	if _, serr := os.Lstat(path); serr == nil {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	return os.Rename(tmp, path)
}
