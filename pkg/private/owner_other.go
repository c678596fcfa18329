//go:build !unix

package private

import "io/fs"

// fileOwner is unknown where files have no Unix owner.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

// linkCount is unknown where files have no Unix link count.
func linkCount(fs.FileInfo) (uint64, bool) { return 0, false }
