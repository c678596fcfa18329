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

// linkCount returns how many names st's file has.
func linkCount(st fs.FileInfo) (uint64, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(sys.Nlink), true
}
