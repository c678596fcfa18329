//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package dockerconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockPath takes an exclusive flock on the file at path, creating it 0600
// if needed, waiting at most wait for another holder to let go. The lock
// file is left in place after unlock: removing it would let two processes
// lock different inodes under the same name.
func lockPath(path string, wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock docker config: %w", err)
	}
	deadline := time.Now().Add(wait)
	delay := 5 * time.Millisecond
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("lock docker config %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("another process holds the lock %s; wait for it to finish and run again", path)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

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
