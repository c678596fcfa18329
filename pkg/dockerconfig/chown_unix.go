//go:build unix

package dockerconfig

import (
	"io/fs"
	"os"
	"syscall"
)

// chownLike gives f the owner and group of old when they differ, so that
// "sudo ecrgate setup docker" does not leave a user's file owned by root.
// Best effort: without the privilege to do so the new file keeps ours.
func chownLike(f *os.File, old fs.FileInfo) {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if uid == os.Geteuid() && gid == os.Getegid() {
		return
	}
	_ = f.Chown(uid, gid)
}
