//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package dockerconfig

import (
	"io/fs"
	"os"
	"time"
)

// lockPath is a no-op where flock is unavailable; Apply still re-reads the
// file and refuses when it changed since the plan was made.
func lockPath(string, time.Duration) (func(), error) { return func() {}, nil }

func chownLike(*os.File, fs.FileInfo) {}
