//go:build unix

package credhelper

import (
	"os"
	"syscall"
)

// openAppend opens path for appending, creating it 0600, without following
// a symbolic link there (O_NOFOLLOW) and without waiting for a reader of a
// FIFO planted there (O_NONBLOCK; the caller refuses what is not a regular
// file).
func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
}
