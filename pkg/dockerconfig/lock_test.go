package dockerconfig

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A lock another holder keeps past the wait is an error that says what to
// do; one that cannot be created names the docker config.
func TestLockPathErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json.lock")
	unlock, err := lockPath(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = lockPath(path, 20*time.Millisecond)
	if want := "another process holds the lock " + path + "; wait for it to finish and run again"; err == nil || err.Error() != want {
		t.Errorf("lockPath on a held lock = %v; want %q", err, want)
	}
	_, err = lockPath(filepath.Join(t.TempDir(), "missing", "config.json.lock"), time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "lock docker config: ") {
		t.Errorf("lockPath in a missing directory = %v", err)
	}
}
