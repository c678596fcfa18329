package tokencache

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/private"
)

// euid is the user the cache must belong to. A variable so that tests, which
// run as root, can pose as an ordinary user.
var euid = os.Geteuid

// The cache refuses, rather than repairs, a directory or file that another
// user could read or replace (pkg/private). Each error names the path and
// the command that fixes it.

// checkDir returns an error unless dir is a directory that belongs to the
// current user (any owner when running as root, which can read it anyway)
// and that its group and others cannot enter (on Windows: whose access
// control list lets no one else in).
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("token cache %s: %w", dir, err)
	}
	p := private.Dir(dir, st, euid())
	if p == nil {
		p = private.ACL(dir)
	}
	if p == nil {
		return nil
	}
	switch p.Kind {
	case private.NotDir:
		return fmt.Errorf("token cache %s is not a directory: remove it (ecrgate creates the directory itself)", dir)
	case private.OpenMode:
		return fmt.Errorf("token cache directory %s has mode %04o, so other users may read or replace your registry tokens, and ecrgate refuses to use it: run \"chmod 700 %s\" (and \"docker logout\" each ECR registry if others may have read a token)",
			dir, p.Mode, dir)
	case private.OpenACL:
		return fmt.Errorf("token cache directory %s lets in %s (its owner or access control list), so they may read or replace your registry tokens, and ecrgate refuses to use it: remove it (ecrgate creates it again, private to you) or run %s (and \"docker logout\" each ECR registry if others may have read a token)",
			dir, strings.Join(p.Others, ", "), p.Command)
	}
	return ownerError(p)
}

// checkFile returns an error unless st (from Lstat or an open file) is a
// regular file of the current user that its group and others cannot read.
func checkFile(path string, st fs.FileInfo) error {
	p := private.File(path, st, euid())
	if p == nil {
		p = private.ACL(path)
	}
	if p == nil {
		return nil
	}
	switch p.Kind {
	case private.Symlink:
		return fmt.Errorf("token cache file %s is a symbolic link, not a regular file: remove it (ecrgate writes a new one)", path)
	case private.NotRegular:
		return fmt.Errorf("token cache file %s is not a regular file: remove it (ecrgate writes a new one)", path)
	case private.OpenMode:
		return fmt.Errorf("token cache file %s has mode %04o, so other users may read or replace a registry token, and ecrgate refuses to use it: run \"chmod 600 %s\" or remove it",
			path, p.Mode, path)
	case private.OpenACL:
		return fmt.Errorf("token cache file %s lets in %s (its owner or access control list), so they may read or replace a registry token, and ecrgate refuses to use it: remove it (ecrgate writes a new one, private to you) or run %s",
			path, strings.Join(p.Others, ", "), p.Command)
	}
	return ownerError(p)
}

// ownerError words a path that belongs to another user.
func ownerError(p *private.Problem) error {
	return fmt.Errorf("token cache %s belongs to user id %d, not to you (user id %d), and ecrgate refuses to use it: remove it, or run \"chown -R %d %s\" if it is yours",
		p.Path, p.Owner, p.User, p.User, p.Path)
}

// checkExisting checks the cache file at path if there is one.
func checkExisting(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("token cache file %s: %w", path, err)
	}
	return checkFile(path, st)
}
