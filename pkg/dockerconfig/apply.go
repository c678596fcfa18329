package dockerconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// lockWait bounds how long Apply waits for another process's lock.
const lockWait = 10 * time.Second

// Apply writes After to the config file and returns the path of the backup
// of the old content ("" when there was no old file). It does nothing and
// returns "" when the plan has no changes.
//
// Under an advisory lock (config.json.lock beside the file) it re-reads the
// file and fails with ErrChanged, touching nothing, when the file is not what
// the plan was made from. It then writes the backup
// (config.json.bak-<UTC timestamp>, with the old file's mode) and replaces the
// file atomically: a temporary file in the same directory, chmod, fsync,
// close, rename. An existing file keeps its mode (and, when run as root, its
// owner); a new file is created 0600 in a directory created 0700. When Path
// is a symlink, its target is replaced and the link is left as it is.
func (p *Plan) Apply() (backup string, err error) {
	if len(p.Changes) == 0 {
		return "", nil
	}
	target, info, err := resolve(p.Path)
	if err != nil {
		return "", err
	}
	if target != p.Target || (info != nil) != p.Exists {
		return "", changedError(p.Path)
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create docker config directory: %w", err)
	}
	unlock, err := lockPath(filepath.Join(dir, filepath.Base(target)+".lock"), lockWait)
	if err != nil {
		return "", err
	}
	defer unlock()

	// Re-read under the lock: another writer may have been faster.
	info, err = os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		info = nil
	case err != nil:
		return "", fmt.Errorf("inspect docker config: %w", err)
	case !info.Mode().IsRegular():
		return "", changedError(p.Path)
	}
	if (info != nil) != p.Exists {
		return "", changedError(p.Path)
	}
	mode := fs.FileMode(0o600)
	if info != nil {
		current, err := readFile(target, info)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(current, p.Before) {
			return "", changedError(p.Path)
		}
		mode = info.Mode().Perm()
		if backup, err = p.writeBackup(target, current, mode, info); err != nil {
			return "", err
		}
	}
	if err := writeAtomic(target, p.After, mode, info); err != nil {
		if backup != "" {
			// The original is untouched; the backup would only be clutter.
			_ = os.Remove(backup)
		}
		return "", err
	}
	return backup, nil
}

func changedError(path string) error {
	return fmt.Errorf("%s %w; run again", path, ErrChanged)
}

// writeBackup writes data to <target>.bak-<UTC timestamp> beside target, with
// a numeric suffix when that name is taken, and returns its path.
func (p *Plan) writeBackup(target string, data []byte, mode fs.FileMode, old fs.FileInfo) (string, error) {
	now := p.now
	if now == nil {
		now = time.Now
	}
	base := target + ".bak-" + now().UTC().Format("20060102T150405Z")
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) && i < 1000 {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("back up docker config: %w", err)
		}
		err = writeAndSync(f, data, mode, old)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(name)
			return "", fmt.Errorf("back up docker config to %s: %w", name, err)
		}
		return name, nil
	}
}

// writeAtomic replaces target with data: temporary file in the same
// directory, chmod, fsync, close, rename, then fsync of the directory.
func writeAtomic(target string, data []byte, mode fs.FileMode, old fs.FileInfo) (err error) {
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := writeAndSync(f, data, mode, old); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	if err := os.Rename(f.Name(), target); err != nil {
		return fmt.Errorf("replace docker config: %w", err)
	}
	syncDir(dir)
	return nil
}

func writeAndSync(f *os.File, data []byte, mode fs.FileMode, old fs.FileInfo) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	// Chmod after creation: the mode given to open is filtered by the umask.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if old != nil {
		chownLike(f, old)
	}
	return f.Sync()
}

// syncDir makes a rename durable. Best effort: not every platform or file
// system supports syncing a directory, and the data is already safe.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
