// Package private checks that a directory or file holding secrets (the
// token cache, the local CA) is the current user's alone. It reports what
// is wrong as a *Problem and repairs nothing: a secret that was readable may
// already be stolen, and one another user could write may be theirs. Callers
// word the message, since only they know the fix to suggest.
package private

import (
	"fmt"
	"io/fs"
	"runtime"
)

// Kind is what makes a path not private.
type Kind int

const (
	NotDir     Kind = iota + 1 // a directory was expected
	Symlink                    // a symbolic link where a file was expected
	NotRegular                 // not a regular file (a device, a socket, …)
	OtherOwner                 // another user owns it
	OpenMode                   // its group or others have some access
)

// Problem says why Path is not private.
type Problem struct {
	Path  string
	Kind  Kind
	Mode  fs.FileMode // permission bits, for OpenMode
	Owner int         // owner's user id, for OtherOwner
	User  int         // the current user's id, for OtherOwner
}

func (p *Problem) Error() string {
	switch p.Kind {
	case NotDir:
		return p.Path + " is not a directory"
	case Symlink:
		return p.Path + " is a symbolic link"
	case NotRegular:
		return p.Path + " is not a regular file"
	case OtherOwner:
		return fmt.Sprintf("%s belongs to user id %d, not to you (user id %d)", p.Path, p.Owner, p.User)
	default:
		return fmt.Sprintf("%s has mode %04o", p.Path, p.Mode)
	}
}

// Dir checks st, the Stat of directory path, for user uid: a directory that
// uid owns (any owner when uid is root, which can read it anyway) and that
// its group and others cannot enter. Modes and owners are not checked on
// Windows.
func Dir(path string, st fs.FileInfo, uid int) *Problem {
	if !st.IsDir() {
		return &Problem{Path: path, Kind: NotDir}
	}
	return ownerAndMode(path, st, uid)
}

// File checks st, the Lstat of path (or the Stat of an open file), for user
// uid: a regular file, not a symbolic link, owned as for Dir, that its group
// and others cannot read.
func File(path string, st fs.FileInfo, uid int) *Problem {
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return &Problem{Path: path, Kind: Symlink}
	case !st.Mode().IsRegular():
		return &Problem{Path: path, Kind: NotRegular}
	}
	return ownerAndMode(path, st, uid)
}

func ownerAndMode(path string, st fs.FileInfo, uid int) *Problem {
	if runtime.GOOS == "windows" {
		return nil
	}
	if owner, ok := fileOwner(st); ok && uid != 0 && owner != uid {
		return &Problem{Path: path, Kind: OtherOwner, Owner: owner, User: uid}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return &Problem{Path: path, Kind: OpenMode, Mode: perm}
	}
	return nil
}
