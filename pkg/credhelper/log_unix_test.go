//go:build unix

package credhelper

import (
	"bytes"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO planted at ECRGATE_LOG neither blocks the helper (opening a FIFO
// for writing waits for a reader) nor receives its lines.
func TestLogRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "helper.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		var stderr bytes.Buffer
		_, closeLog, err := OpenLog(Name, []string{"ECRGATE_LOG=" + path}, &stderr)
		if err == nil {
			closeLog()
		}
		done <- stderr.String()
	}()
	select {
	case stderr := <-done:
		refusedOnce(t, stderr, "ECRGATE_LOG "+path+" is not a regular file: not logging there; point ECRGATE_LOG elsewhere")
	case <-time.After(10 * time.Second):
		t.Fatal("OpenLog blocked on a FIFO")
	}
}
