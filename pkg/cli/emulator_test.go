package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play ecrgate-emulator: with
// ECRGATE_TEST_FAKE_EMULATOR set it runs fakeEmulator instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("ECRGATE_TEST_FAKE_EMULATOR") != "" {
		os.Exit(fakeEmulator(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeEmulator prints its arguments and one line on stderr, then:
// "exit N" exits N; "wait" prints "ready", waits for SIGINT or SIGTERM and
// prints its name. "__complete …" only answers like cobra's completion
// command.
func fakeEmulator(args []string) int {
	if len(args) > 0 && args[0] == "__complete" {
		fmt.Printf("--listen\taddress\n--log-level\tlevel\n:4\n")
		return 0
	}
	fmt.Printf("args %q\n", args)
	fmt.Fprintln(os.Stderr, "fake emulator stderr")
	switch {
	case len(args) == 2 && args[0] == "exit":
		n, _ := strconv.Atoi(args[1])
		return n
	case len(args) == 1 && args[0] == "wait":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		fmt.Println("ready")
		fmt.Printf("got %v\n", <-sigs)
	}
	return 0
}

// useFakeEmulator points ECRGATE_EMULATOR at the test binary as the fake.
func useFakeEmulator(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECRGATE_EMULATOR", self)
	t.Setenv("ECRGATE_TEST_FAKE_EMULATOR", "1")
}

func TestEmulatorPath(t *testing.T) {
	dir := t.TempDir()
	onPath := filepath.Join(dir, emulatorName)
	if err := os.WriteFile(onPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, override, want, wantErr string
	}{
		{name: "override wins", path: dir, override: "/opt/x/ecrgate-emulator", want: "/opt/x/ecrgate-emulator"},
		{name: "on PATH", path: dir, want: onPath},
		{name: "missing", path: t.TempDir(), wantErr: "ecrgate-emulator is not next to ecrgate nor on PATH: install it with make install, or set ECRGATE_EMULATOR to its path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			env := []string{"PATH=" + tc.path}
			if tc.override != "" {
				env = append(env, "ECRGATE_EMULATOR="+tc.override)
			}
			got, err := emulatorPath(env)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("emulatorPath = %q, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("emulatorPath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestEmulatorMissing: one sentence naming the program, and --help still
// says what the command is.
func TestEmulatorMissing(t *testing.T) {
	t.Setenv("ECRGATE_EMULATOR", "")
	t.Setenv("PATH", t.TempDir())
	var stdout, stderr bytes.Buffer
	err := Execute(context.Background(), []string{"emulator", "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "ecrgate-emulator is not next to ecrgate nor on PATH") {
		t.Fatalf("err = %v, want the missing-program sentence", err)
	}
	stdout.Reset()
	stderr.Reset()
	if err := Execute(context.Background(), []string{"emulator", "--help"}, &stdout, &stderr); err != nil {
		t.Fatalf("emulator --help without the emulator: %v", err)
	}
	if !strings.Contains(stdout.String(), "ecrgate emulator --listen") || !strings.Contains(stderr.String(), "not next to ecrgate nor on PATH") {
		t.Fatalf("help: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestEmulatorPassesArgsStreamsAndExitStatus runs the fake emulator through
// "ecrgate emulator": every argument reaches it unparsed (--help included),
// its stdout and stderr are ecrgate's, and its exit status comes back.
func TestEmulatorPassesArgsStreamsAndExitStatus(t *testing.T) {
	useFakeEmulator(t)
	for _, tc := range []struct {
		args     []string
		wantOut  string
		wantCode int
	}{
		{args: []string{"--listen", "127.0.0.1:0", "--fail", "CreateRepository=2:throttle"}, wantOut: `args ["--listen" "127.0.0.1:0" "--fail" "CreateRepository=2:throttle"]`},
		{args: []string{"--help"}, wantOut: `args ["--help"]`},
		{args: []string{"exit", "3"}, wantOut: `args ["exit" "3"]`, wantCode: 3},
	} {
		var stdout, stderr bytes.Buffer
		err := Execute(context.Background(), append([]string{"emulator"}, tc.args...), &stdout, &stderr)
		if got := strings.TrimSpace(stdout.String()); got != tc.wantOut {
			t.Errorf("%q: stdout %q, want %q", tc.args, got, tc.wantOut)
		}
		if !strings.Contains(stderr.String(), "fake emulator stderr") {
			t.Errorf("%q: stderr %q lacks the emulator's", tc.args, stderr.String())
		}
		var ee *exec.ExitError
		switch {
		case tc.wantCode == 0 && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.wantCode != 0 && (!errors.As(err, &ee) || ee.ExitCode() != tc.wantCode):
			t.Errorf("%q: err %v, want exit status %d", tc.args, err, tc.wantCode)
		}
	}
}

// TestEmulatorForwardsSignals: SIGTERM and SIGINT sent to ecrgate reach the
// emulator, and so does the end of ecrgate's context.
func TestEmulatorForwardsSignals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals to forward on Windows")
	}
	useFakeEmulator(t)
	for _, tc := range []struct {
		name string
		send os.Signal // nil: cancel the context
		want string
	}{
		{"SIGTERM", syscall.SIGTERM, "got terminated"},
		{"SIGINT", os.Interrupt, "got interrupt"},
		{"context", nil, "got interrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.send != nil {
				// Stands for main's signal.NotifyContext: without a handler
				// of our own in place the signal would stop the test binary.
				keep := make(chan os.Signal, 1)
				signal.Notify(keep, tc.send)
				defer signal.Stop(keep)
			}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := Execute(ctx, []string{"emulator", "wait"}, pw, io.Discard)
				pw.Close()
				done <- err
			}()
			sc := bufio.NewScanner(pr)
			for sc.Scan() && sc.Text() != "ready" {
			}
			if tc.send == nil {
				cancel()
			} else if err := signalSelf(tc.send); err != nil {
				t.Fatal(err)
			}
			var rest []string
			for sc.Scan() {
				rest = append(rest, sc.Text())
			}
			if err := <-done; err != nil {
				t.Fatalf("ecrgate emulator: %v", err)
			}
			if len(rest) != 1 || rest[0] != tc.want {
				t.Fatalf("the emulator printed %q after ready, want %q", rest, tc.want)
			}
		})
	}
}

// TestEmulatorCompletion asks the emulator for completions.
func TestEmulatorCompletion(t *testing.T) {
	useFakeEmulator(t)
	var stdout bytes.Buffer
	if err := Execute(context.Background(), []string{"__complete", "emulator", "--l"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "--listen\taddress\n--log-level\tlevel\n:4\n"; got != want {
		t.Fatalf("completions %q, want %q", got, want)
	}
}

func signalSelf(s os.Signal) error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Signal(s)
}
