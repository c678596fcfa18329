package localca

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Install and Uninstall may run as root ("sudo ecrgate ca install") on
// paths another user can change: the CA directory is the invoking user's,
// and Docker Desktop's certs.d is in their home. So every file operation
// there goes through an *os.Root opened on a directory that was checked
// with Lstat (never a symbolic link) and is checked again once open, and
// acts on one name inside it: a symbolic link swapped in later is neither
// followed out of that directory nor written through.

// errNotPlain means a path is a symbolic link, or not the regular file or
// directory expected, or was replaced while in use.
var errNotPlain = errors.New("a symbolic link or not a regular file or directory")

// Size limits for what is read from those directories.
const (
	maxCertFile     = 64 << 10
	maxManifestFile = 1 << 20
)

// openCADir opens the CA directory dir after the checks that loading the CA
// makes (checkPrivateDir), applied to the directory actually opened.
func openCADir(dir string) (*os.Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("the CA directory %s: %w", dir, err)
	}
	st, err := r.Stat(".")
	if err != nil {
		err = fmt.Errorf("the CA directory %s: %w", dir, err)
	} else {
		err = checkPrivateDirInfo(dir, st)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// openSubdir opens the directory name in parent, which must be a real
// directory: not a symbolic link, and the same directory when opened as when
// looked at. With create, a missing directory is created (mode 0755). It
// also returns what Lstat said of it, to recognise it later.
func openSubdir(parent *os.Root, name string, create bool) (*os.Root, fs.FileInfo, error) {
	st, err := parent.Lstat(name)
	if create && errors.Is(err, fs.ErrNotExist) {
		if err = parent.Mkdir(name, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
			st, err = parent.Lstat(name)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		return nil, nil, errNotPlain
	}
	r, err := parent.OpenRoot(name)
	if err != nil {
		return nil, nil, err
	}
	if got, err := r.Stat("."); err != nil || !os.SameFile(st, got) {
		r.Close()
		return nil, nil, errNotPlain
	}
	return r, st, nil
}

// readRegular reads at most limit+1 bytes of name in r, which must be a
// regular file, not a symbolic link; a longer file is returned cut short,
// so that it equals nothing of at most limit bytes.
func readRegular(r *os.Root, name string, limit int64) ([]byte, error) {
	st, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotPlain
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if got, err := f.Stat(); err != nil || !os.SameFile(st, got) {
		return nil, errNotPlain
	}
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// writeIn atomically and durably replaces name in r with data, mode perm:
// a new temporary file beside it, renamed over it. A symbolic link at name
// is replaced, never followed.
func writeIn(r *os.Root, name string, data []byte, perm fs.FileMode) error {
	tmp := "." + name + ".tmp-" + rand.Text()
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		r.Remove(tmp)
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		r.Remove(tmp)
		return err
	}
	if err := r.Rename(tmp, name); err != nil {
		r.Remove(tmp)
		return err
	}
	if d, err := r.Open("."); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
