package filelock_test

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/filelock"
)

// A second Lock on the same file, even in the same process, waits for the
// first to be released, then gets the lock.
func TestLockExcludesAndWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := filelock.Lock(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("lock file: %v, %v; want mode 0600", st, err)
		}
	}
	got := make(chan error, 1)
	go func() {
		u, err := filelock.Lock(context.Background(), path, 5*time.Second)
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second Lock returned (%v) while the first held the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second Lock after release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second Lock still waiting after the release")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("lock file removed: %v", err)
	}
}

// The wait is bounded: ErrTimeout after it, the caller's context error when
// the context ends first.
func TestLockTimeoutAndCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := filelock.Lock(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	start := time.Now()
	if _, err := filelock.Lock(context.Background(), path, 50*time.Millisecond); !errors.Is(err, filelock.ErrTimeout) {
		t.Errorf("Lock on a held lock = %v; want ErrTimeout", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 25*time.Second { // an upper bound only against a hang
		t.Errorf("timed out after %v; want about 50ms", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if _, err := filelock.Lock(ctx, path, 10*time.Second); !errors.Is(err, context.Canceled) || errors.Is(err, filelock.ErrTimeout) {
		t.Errorf("Lock with a cancelled context = %v; want context.Canceled", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := filelock.Lock(ctx, path, 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock past the caller's deadline = %v; want context.DeadlineExceeded", err)
	}
}

// A lock file that cannot be created is an *fs.PathError, not a timeout.
func TestLockOpenError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "x.lock")
	_, err := filelock.Lock(context.Background(), path, time.Second)
	var pe *fs.PathError
	if !errors.As(err, &pe) || errors.Is(err, filelock.ErrTimeout) {
		t.Errorf("Lock in a missing directory = %v; want an *fs.PathError", err)
	}
}

// TestMain lets the test binary play another process holding a lock.
func TestMain(m *testing.M) {
	if path := os.Getenv("FILELOCK_TEST_HOLD"); path != "" {
		unlock, err := filelock.Lock(context.Background(), path, time.Second)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		// Hold the lock until stdin closes, then exit without unlocking:
		// the operating system releases it.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = unlock
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Another process's lock excludes this one until that process exits.
func TestLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FILELOCK_TEST_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	if _, err := filelock.Lock(context.Background(), path, 50*time.Millisecond); !errors.Is(err, filelock.ErrTimeout) {
		t.Errorf("Lock while another process holds it = %v; want ErrTimeout", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	unlock, err := filelock.Lock(context.Background(), path, time.Second)
	if err != nil {
		t.Fatalf("Lock after the other process exited: %v", err)
	}
	unlock()
}
