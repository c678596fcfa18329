package tokencache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testKey = "v1|123456789012.dkr.ecr.us-east-1.amazonaws.com|profile=default|role=|endpoint="

func testToken() Token {
	return Token{Registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS",
		Password: "pw-private-test", ExpiresAt: time.Now().Add(12 * time.Hour)}
}

// poseAs makes the cache believe it runs as user id uid.
func poseAs(t *testing.T, uid int) {
	t.Helper()
	old := euid
	euid = func() int { return uid }
	t.Cleanup(func() { euid = old })
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestWriteCreatesPrivateFiles(t *testing.T) {
	c := Cache{Dir: filepath.Join(t.TempDir(), "cache", "ecrgate", "tokens")}
	if err := c.Write(testKey, testToken()); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, c.Dir); m != 0o700 {
		t.Errorf("directory mode = %04o, want 0700", m)
	}
	if m := mode(t, c.path(testKey)); m != 0o600 {
		t.Errorf("file mode = %04o, want 0600", m)
	}
	unlock, err := c.Lock(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	got, ok := c.Read(testKey, slog.New(slog.DiscardHandler))
	if !ok || got.Password != testToken().Password {
		t.Fatalf("Read = %v, %v", got, ok)
	}
	if len(c.All(slog.New(slog.DiscardHandler))) != 1 {
		t.Error("All does not list the token")
	}
}

// A directory or file others may read or write is refused, not repaired:
// Read misses and says why, Lock (which ecrauth takes before fetching)
// fails with the path and the fix, and nothing is chmod-ed behind the
// user's back.
func TestRefusesWhatIsNotPrivate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, c Cache)
		wantMsg  func(c Cache) string
		dirError bool // Write and RemoveRegistry fail too
	}{
		{"directory readable by others", func(t *testing.T, c Cache) { chmod(t, c.Dir, 0o755) },
			func(c Cache) string { return `run "chmod 700 ` + c.Dir + `"` }, true},
		{"directory writable by the group", func(t *testing.T, c Cache) { chmod(t, c.Dir, 0o770) },
			func(c Cache) string { return `has mode 0770` }, true},
		{"file readable by others", func(t *testing.T, c Cache) { chmod(t, c.path(testKey), 0o644) },
			func(c Cache) string { return `run "chmod 600 ` + c.path(testKey) + `"` }, false},
		{"file readable by the group", func(t *testing.T, c Cache) { chmod(t, c.path(testKey), 0o640) },
			func(c Cache) string { return `has mode 0640` }, false},
		{"file is a symbolic link", func(t *testing.T, c Cache) {
			elsewhere := filepath.Join(t.TempDir(), "planted.json")
			b, err := os.ReadFile(c.path(testKey))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(elsewhere, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(c.path(testKey)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, c.path(testKey)); err != nil {
				t.Fatal(err)
			}
		}, func(c Cache) string { return "not a regular file" }, false},
		{"everything belongs to another user", func(t *testing.T, c Cache) { poseAs(t, os.Getuid()+4242) },
			func(c Cache) string { return "not to you" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Cache{Dir: filepath.Join(t.TempDir(), "tokens")}
			if err := c.Write(testKey, testToken()); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, c)
			dirMode := mode(t, c.Dir)
			want := tc.wantMsg(c)

			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if got, ok := c.Read(testKey, log); ok {
				t.Errorf("Read returned %v from a cache that is not private", got)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), strings.ReplaceAll(want, `"`, `\"`)) {
				t.Errorf("Read logged %q; want a warning containing %q", logs.String(), want)
			}
			unlock, err := c.Lock(context.Background(), testKey)
			if err == nil {
				unlock()
				t.Fatal("Lock succeeded on a cache that is not private")
			}
			if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), want) {
				t.Errorf("Lock error = %v; want ErrNotPrivate and %q", err, want)
			}
			werr := c.Write(testKey, testToken())
			rerr := c.RemoveRegistry(testToken().Registry, log)
			if tc.dirError {
				if !errors.Is(werr, ErrNotPrivate) || !errors.Is(rerr, ErrNotPrivate) {
					t.Errorf("Write = %v, RemoveRegistry = %v; want ErrNotPrivate", werr, rerr)
				}
				if len(c.All(log)) != 0 {
					t.Error("All lists tokens of a directory that is not private")
				}
			}
			if m := mode(t, c.Dir); m != dirMode {
				t.Errorf("directory mode changed from %04o to %04o: refuse, do not repair", dirMode, m)
			}
		})
	}
}

// Root may use a cache that belongs to another user (sudo keeps HOME); an
// ordinary user only their own.
func TestOwnerCheck(t *testing.T) {
	c := Cache{Dir: filepath.Join(t.TempDir(), "tokens")}
	if err := c.Write(testKey, testToken()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	poseAs(t, os.Getuid())
	if _, ok := c.Read(testKey, log); !ok {
		t.Error("the owner cannot read the cache")
	}
	poseAs(t, 0)
	if _, ok := c.Read(testKey, log); !ok {
		t.Error("root cannot read the cache")
	}
	if os.Getuid() != 0 {
		return
	}
	poseAs(t, 4242) // an ordinary user, while the files are root's
	if _, ok := c.Read(testKey, log); ok {
		t.Error("user 4242 read a cache that belongs to root")
	}
	for _, p := range []string{c.Dir, c.path(testKey)} {
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := c.Read(testKey, log); !ok {
		t.Error("user 4242 cannot read its own cache")
	}
}

func chmod(t *testing.T, path string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
}
