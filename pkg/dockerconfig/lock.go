package dockerconfig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/ecrgate/ecrgate/pkg/filelock"
)

// lockPath takes the exclusive lock on the file at path (pkg/filelock),
// creating it 0600 if needed, waiting at most wait for another holder to
// let go. The lock file is left in place after unlock: removing it would
// let two processes lock different inodes under the same name.
func lockPath(path string, wait time.Duration) (unlock func(), err error) {
	unlock, err = filelock.Lock(context.Background(), path, wait)
	var pe *fs.PathError
	switch {
	case err == nil:
		return unlock, nil
	case errors.Is(err, filelock.ErrTimeout):
		return nil, fmt.Errorf("another process holds the lock %s; wait for it to finish and run again", path)
	case errors.As(err, &pe):
		return nil, fmt.Errorf("lock docker config: %w", err)
	}
	return nil, fmt.Errorf("lock docker config %s: %w", path, err)
}
