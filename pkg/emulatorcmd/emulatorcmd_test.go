package emulatorcmd

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServesUntilCancelled starts the emulator as the program does, reads
// its --env-file, calls it, and stops it by ending the context.
func TestServesUntilCancelled(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "ecr.env")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Execute(ctx, []string{"--listen", "127.0.0.1:0", "--env-file", envFile, "--accounts", "111111111111,222222222222",
			"--region", "eu-west-1", "--fail", "CreateRepository=1:throttle", "--log-level", "warn"}, &stdout, &stderr)
	}()
	var env string
	for deadline := time.Now().Add(20 * time.Second); env == ""; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(envFile)
		if err == nil {
			env = string(b)
		}
		select {
		case err := <-done:
			t.Fatalf("the emulator stopped before writing %s: %v\n%s", envFile, err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no env file within 20s")
		}
	}
	st, err := os.Stat(envFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v (%v), want 0600", st.Mode(), err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		vars[k] = v
	}
	url := vars["AWS_ENDPOINT_URL_ECR"]
	if !strings.HasPrefix(url, "http://127.0.0.1:") || vars["AWS_REGION"] != "eu-west-1" || vars["AWS_ACCESS_KEY_ID"] == "" {
		t.Fatalf("env file:\n%s", env)
	}
	if !strings.Contains(stdout.String(), "# ecrgate emulator: ECR for 111111111111, 222222222222 in eu-west-1 on "+url+"\n"+env) {
		t.Errorf("stdout %q lacks the header and the export lines", stdout.String())
	}
	resp, err := http.Get(url + "/_ecrfake/calls")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /_ecrfake/calls: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the emulator did not stop within 20s of its context ending")
	}
}

func TestRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fail", "CreateRepository"}, "ecrgate-emulator: --fail: fault \"CreateRepository\""},
		{[]string{"--log-level", "loud"}, "ecrgate-emulator: log level \"loud\""},
		{[]string{"--accounts", "12"}, "ecrgate-emulator: emulator:"},
		{[]string{"--listen", "127.0.0.1:notaport"}, "ecrgate-emulator: emulator: listen on 127.0.0.1:notaport"},
		{[]string{"--no-such-flag"}, "ecrgate-emulator: unknown flag: --no-such-flag"},
		{[]string{"stray"}, "ecrgate-emulator: unknown command \"stray\""},
	} {
		var stderr bytes.Buffer
		err := Execute(context.Background(), tc.args, io.Discard, &stderr)
		if err == nil || !strings.HasPrefix(stderr.String(), tc.want) {
			t.Errorf("%q: err %v, stderr %q; want it to start with %q", tc.args, err, stderr.String(), tc.want)
		}
	}
}

// TestExamplesParse runs each example with --help: cobra parses every flag
// (an unknown one fails) and runs nothing.
func TestExamplesParse(t *testing.T) {
	n := 0
	for _, line := range strings.Split(newCommand().Example, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != Name {
			t.Fatalf("example %q does not run %s", line, Name)
		}
		n++
		var stdout bytes.Buffer
		if err := Execute(context.Background(), append(f[1:], "--help"), &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "--blob-redirect") {
			t.Errorf("example %q: %v\n%s", line, err, stdout.String())
		}
	}
	if n < 3 {
		t.Errorf("only %d examples", n)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:5080":                  "http://127.0.0.1:5080",
		"ecrfake/secret/key/not/a/real/one/0000": "ecrfake/secret/key/not/a/real/one/0000",
		"":                                       "''",
		"a b":                                    "'a b'",
		"it's":                                   `'it'\''s'`,
		"$HOME":                                  "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while the emulator writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
