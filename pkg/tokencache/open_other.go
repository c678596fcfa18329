//go:build !unix

package tokencache

import (
	"io/fs"
	"os"
)

// openNoFollow opens the cache file at path for reading unless it is a
// symbolic link (errSymlink). Windows has no O_NOFOLLOW, so the check is an
// Lstat before the open; the cache directory, which only the user can
// change (its ACL, as for everything under the user profile), keeps
// others from swapping the file in between.
func openNoFollow(path string) (*os.File, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.Open(path)
}
