package localca

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// euid is the user the CA must belong to. A variable so that tests, which
// run as root, can pose as an ordinary user.
var euid = os.Geteuid

// The CA directory and key are refused, never repaired, when another user
// could read or replace them: a key that was readable may be stolen, and a
// key or certificate another user could write may be theirs. The errors name
// the path and the command that fixes it.

// checkPrivateDir returns an error unless dir is a directory of the current
// user (any owner when running as root, e.g. "sudo ecrgate ca install --dir
// ~/.local/share/ecrgate/ca") that its group and others cannot enter.
func checkPrivateDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the CA directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("the CA directory %s is not a directory", dir)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if err := checkOwner(dir, st); err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("the CA directory %s has mode %04o, so other users may read or replace the CA key, and ecrgate refuses to use it: run \"chmod 700 %s\" (and if others may have read %s, consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			dir, perm, dir, KeyFile)
	}
	return nil
}

// checkPrivateKey returns an error unless path (not followed if it is a
// symbolic link) is a regular file of the current user that its group and
// others cannot read.
func checkPrivateKey(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (a symbolic link or other): remove the CA files and run \"ecrgate ca init\" again", path)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if err := checkOwner(path, st); err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, so others may read the CA key: run \"chmod 600 %s\" (and consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			path, perm, path)
	}
	return nil
}

// checkOwner refuses a path that belongs to another user, unless the
// process runs as root.
func checkOwner(path string, st fs.FileInfo) error {
	owner, ok := fileOwner(st)
	if !ok {
		return nil
	}
	uid := euid()
	if uid == 0 || owner == uid {
		return nil
	}
	return fmt.Errorf("%s belongs to user id %d, not to you (user id %d), and ecrgate refuses to use a CA another user could have replaced: remove it, or run \"chown -R %d %s\" if it is yours",
		path, owner, uid, uid, path)
}
