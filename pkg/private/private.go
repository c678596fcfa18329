// Package private checks that a directory or file holding secrets (the
// token cache, the local CA) is the current user's alone, that a file the
// user's programs write (the helper's log) is theirs alone, and that a file
// whose content is trusted (the configuration) only they and root can
// change. It reports what is wrong as a *Problem and repairs nothing: a
// secret that was readable may already be stolen, and one another user could
// write may be theirs. Callers word the message, since only they know the
// fix to suggest.
package private

import (
	"fmt"
	"io/fs"
	"runtime"
	"strings"
)

// Kind is what makes a path not private.
type Kind int

const (
	NotDir     Kind = iota + 1 // a directory was expected
	Symlink                    // a symbolic link where a file was expected
	NotRegular                 // not a regular file (a device, a socket, …)
	OtherOwner                 // another user owns it
	OpenMode                   // its group or others have some access (write access, for Guarded)
	Linked                     // a file with more than one name (hard link)
	OpenACL                    // Windows: its owner or access control list lets others in (ACL)
)

// Problem says why Path is not private.
type Problem struct {
	Path  string
	Kind  Kind
	Mode  fs.FileMode // permission bits, for OpenMode
	Owner int         // owner's user id, for OtherOwner
	User  int         // the current user's id, for OtherOwner

	// For OpenACL: who else is let in (DOMAIN\name, a SID, or a
	// parenthesised note), and the icacls command that leaves the current
	// user and SYSTEM alone in the list, for the caller's message.
	Others  []string
	Command string
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
	case Linked:
		return p.Path + " has other names (hard links)"
	case OpenACL:
		return p.Path + " lets in " + strings.Join(p.Others, ", ") + " (its owner or access control list)"
	default:
		return fmt.Sprintf("%s has mode %04o", p.Path, p.Mode)
	}
}

// Dir checks st, the Stat of directory path, for user uid: a directory that
// uid owns (any owner when uid is root, which can read it anyway) and that
// its group and others cannot enter. Modes and owners are not checked on
// Windows, where ACL checks the access control list.
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

// Owned checks st, the Stat of path, for belonging to user uid exactly, root
// included: a file root writes must not be a file an ordinary user planted.
// Owners are not checked on Windows.
func Owned(path string, st fs.FileInfo, uid int) *Problem {
	if runtime.GOOS == "windows" {
		return nil
	}
	if owner, ok := fileOwner(st); ok && owner != uid {
		return &Problem{Path: path, Kind: OtherOwner, Owner: owner, User: uid}
	}
	return nil
}

// SingleLink checks st, the Stat of an open file at path, for having no other
// name: a hard link planted at path would make a write there land in
// another of the user's files. Link counts are not checked on Windows.
func SingleLink(path string, st fs.FileInfo) *Problem {
	if n, ok := linkCount(st); ok && n > 1 {
		return &Problem{Path: path, Kind: Linked}
	}
	return nil
}

// Guarded checks st, the Stat of path, for being safe from changes by
// anyone but user uid and root: owned by one of them, and not writable by
// its group or others, except a directory with the sticky bit (as /tmp),
// where others cannot rename or remove what they do not own. What others
// may read is not checked: it is for files whose content is trusted, not
// secret (the configuration). Modes and owners are not checked on Windows.
func Guarded(path string, st fs.FileInfo, uid int) *Problem {
	if runtime.GOOS == "windows" {
		return nil
	}
	if owner, ok := fileOwner(st); ok && owner != 0 && owner != uid {
		return &Problem{Path: path, Kind: OtherOwner, Owner: owner, User: uid}
	}
	if st.IsDir() && st.Mode()&fs.ModeSticky != 0 {
		return nil
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return &Problem{Path: path, Kind: OpenMode, Mode: perm}
	}
	return nil
}

// aclProblem is ACL's OpenACL for path (a directory when dir) with others
// let in. Its Command grants the current user and SYSTEM full control,
// drops the inherited entries and removes the others' entries.
func aclProblem(path string, dir bool, others []string) *Problem {
	inherit := ""
	if dir {
		inherit = "(OI)(CI)"
	}
	cmd := fmt.Sprintf(`icacls "%s" /inheritance:r /grant:r "%%USERNAME%%:%[2]sF" "SYSTEM:%[2]sF"`, path, inherit)
	var remove []string
	for _, o := range others {
		switch {
		case strings.HasPrefix(o, "("):
		case strings.HasPrefix(o, "S-1-"):
			remove = append(remove, "*"+o)
		default:
			remove = append(remove, `"`+o+`"`)
		}
	}
	if len(remove) > 0 {
		cmd += " /remove " + strings.Join(remove, " ")
	}
	return &Problem{Path: path, Kind: OpenACL, Others: others, Command: cmd}
}
