//go:build !unix

package credhelper

import (
	"errors"
	"os"
)

// openAppend opens path for appending, creating it, unless a symbolic link
// is there (the check and the open are two steps: Windows has no
// O_NOFOLLOW, and creating symbolic links needs a privilege there).
func openAppend(path string) (*os.File, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return nil, errors.New("a symbolic link")
	}
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
}
