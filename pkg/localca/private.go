package localca

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/private"
)

// euid is the user the CA must belong to. A variable so that tests, which
// run as root, can pose as an ordinary user.
var euid = os.Geteuid

// The CA directory and key are refused, never repaired, when another user
// could read or replace them (pkg/private). The errors name the path and
// the command that fixes it.

// checkPrivateDir returns an error unless dir is a directory of the current
// user (any owner when running as root, e.g. "sudo ecrgate ca install --dir
// ~/.local/share/ecrgate/ca") that its group and others cannot enter (on
// Windows: whose access control list lets no one else in).
func checkPrivateDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the CA directory %s: %w", dir, err)
	}
	return checkPrivateDirInfo(dir, st)
}

// checkPrivateDirInfo is checkPrivateDir on st, the Stat of dir (or of the
// directory opened as dir).
func checkPrivateDirInfo(dir string, st fs.FileInfo) error {
	p := private.Dir(dir, st, euid())
	if p == nil {
		p = private.ACL(dir)
	}
	if p == nil {
		return nil
	}
	switch p.Kind {
	case private.NotDir:
		return fmt.Errorf("the CA directory %s is not a directory", dir)
	case private.OpenMode:
		return fmt.Errorf("the CA directory %s has mode %04o, so other users may read or replace the CA key, and ecrgate refuses to use it: run \"chmod 700 %s\" (and if others may have read %s, consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			dir, p.Mode, dir, KeyFile)
	case private.OpenACL:
		return fmt.Errorf("the CA directory %s lets in %s (its owner or access control list), so they may read or replace the CA key, and ecrgate refuses to use it: run %s (and if others may have read %s, consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			dir, strings.Join(p.Others, ", "), p.Command, KeyFile)
	}
	return ownerError(p)
}

// checkPrivateKey returns an error unless path (not followed if it is a
// symbolic link) is a regular file of the current user that its group and
// others cannot read.
func checkPrivateKey(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	p := private.File(path, st, euid())
	if p == nil {
		p = private.ACL(path)
	}
	if p == nil {
		return nil
	}
	switch p.Kind {
	case private.Symlink, private.NotRegular:
		return fmt.Errorf("%s is not a regular file (a symbolic link or other): remove the CA files and run \"ecrgate ca init\" again", path)
	case private.OpenMode:
		return fmt.Errorf("%s has mode %04o, so others may read the CA key: run \"chmod 600 %s\" (and consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			path, p.Mode, path)
	case private.OpenACL:
		return fmt.Errorf("%s lets in %s (its owner or access control list), so they may read the CA key: run %s (and consider the key leaked: the CA's name constraints limit the harm to ECR host names)",
			path, strings.Join(p.Others, ", "), p.Command)
	}
	return ownerError(p)
}

// ownerError words a path that belongs to another user.
func ownerError(p *private.Problem) error {
	return fmt.Errorf("%s belongs to user id %d, not to you (user id %d), and ecrgate refuses to use a CA another user could have replaced: remove it, or run \"chown -R %d %s\" if it is yours",
		p.Path, p.Owner, p.User, p.User, p.Path)
}
