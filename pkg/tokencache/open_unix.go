//go:build unix

package tokencache

import (
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens the cache file at path for reading without following
// a symbolic link there: O_NOFOLLOW makes the open itself fail, so a link
// planted after any check is never followed. A link is reported as
// errSymlink (Linux and macOS say ELOOP, FreeBSD EMLINK, NetBSD EFTYPE).
func openNoFollow(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, errSymlink
		}
		return nil, err
	}
	return f, nil
}
