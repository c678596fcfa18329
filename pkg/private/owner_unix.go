//go:build unix

package private

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the user id that owns st's file.
func fileOwner(st fs.FileInfo) (int, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(sys.Uid), true
}
