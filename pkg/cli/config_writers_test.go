package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/ecrgate/ecrgate/pkg/config"
)

// Whoever can edit the config can set api_endpoint: and receive the tokens
// ecrgate gets, so serve, and every other command that acts on the config,
// refuses a file others can write (here: the group, as a umask of 002
// leaves it), in one line naming the path and the fix, before it listens
// or calls anyone.
func TestServeRefusesConfigOthersCanWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes are not checked on Windows")
	}
	for _, k := range []string{"ECRGATE_CONFIG", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	path := writeConfig(t, "default_registry: "+testRegistry+"\nlisten: 127.0.0.1:0\nadmin_listen: 127.0.0.2:0\n"+
		"registries:\n  - host: "+testRegistry+"\n    api_endpoint: http://127.0.0.1:9/\n")
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	want := "ecrgate: " + path + `: other users can change this file (mode 0664) and make ecrgate send your registry tokens where they choose, so ecrgate refuses it: run "chmod go-w ` + path + `"` + "\n"
	for _, args := range [][]string{
		{"serve", "--config", path},
		{"config", "check", "--config", path},
		{"setup", "docker", "--dry-run", "--config", path, "--docker-config", filepath.Join(t.TempDir(), "config.json")},
		{"explain", "--offline", "--config", path, "localhost:5000/team/app"},
	} {
		t.Run(args[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			start := time.Now()
			err := Execute(ctx, args, &out, &errb)
			if err == nil || !errors.Is(err, config.ErrOthersCanWrite) {
				t.Fatalf("%v = %v after %v; want ErrOthersCanWrite", args, err, time.Since(start).Round(time.Millisecond))
			}
			if errb.String() != want {
				t.Errorf("stderr = %q\nwant %q", errb.String(), want)
			}
		})
	}

	// chmod go-w is the fix.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := execute(t, "config", "check", "--config", path); err != nil {
		t.Errorf("config check after chmod go-w: %v", err)
	}
}
