// Package filelock is ecrgate's one cross-process file lock, for the token
// cache and Docker's config.json: an exclusive lock on a lock file
// (flock(2) on Unix, LockFileEx on Windows, by github.com/gofrs/flock),
// waited for at most a given time. The lock belongs to the open file, so
// two Lock calls in one process exclude each other too, and the operating
// system releases it when the process exits, however it exits.
package filelock

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/gofrs/flock"
)

// ErrTimeout is returned when another holder kept the lock for the whole
// wait.
var ErrTimeout = errors.New("another process holds the lock")

// PollInterval is how often Lock tries again while another process holds
// the lock: short, since a waiting credential helper is a docker push
// waiting.
const PollInterval = 5 * time.Millisecond

// Lock takes the exclusive lock on the file at path, creating it (0600) if
// needed, waiting at most wait for another holder to let go. It returns
// ctx's error when ctx ends first, ErrTimeout when the wait does, and
// otherwise an error of opening (an *fs.PathError) or of locking the file.
// The returned func releases the lock. The lock file is left in place:
// removing it would let two processes lock different files of one name.
func Lock(ctx context.Context, path string, wait time.Duration) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(waitCtx, PollInterval)
	switch {
	case ok:
		return func() { _ = fl.Unlock() }, nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, ctx.Err()
	case err == nil || (waitCtx.Err() != nil && errors.Is(err, waitCtx.Err())):
		return nil, ErrTimeout
	}
	return nil, err
}
