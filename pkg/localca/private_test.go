//go:build unix

package localca

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// poseAs makes the package believe it runs as user id uid.
func poseAs(t *testing.T, uid int) {
	t.Helper()
	old := euid
	euid = func() int { return uid }
	t.Cleanup(func() { euid = old })
}

func permOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// A CA directory or key that others could read or replace is refused, not
// repaired, and the error names the path and the fix.
func TestLoadRefusesWhatIsNotPrivate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  func(dir string) string
	}{
		{"directory readable by others", func(t *testing.T, dir string) { chmodT(t, dir, 0o755) },
			func(dir string) string { return `run "chmod 700 ` + dir + `"` }},
		{"directory open to the group", func(t *testing.T, dir string) { chmodT(t, dir, 0o750) },
			func(dir string) string { return "has mode 0750" }},
		{"key readable by the group", func(t *testing.T, dir string) { chmodT(t, filepath.Join(dir, KeyFile), 0o640) },
			func(dir string) string { return `run "chmod 600 ` + filepath.Join(dir, KeyFile) + `"` }},
		{"key is a symbolic link", func(t *testing.T, dir string) {
			key := filepath.Join(dir, KeyFile)
			moved := filepath.Join(t.TempDir(), "elsewhere.key")
			if err := os.Rename(key, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(moved, key); err != nil {
				t.Fatal(err)
			}
		}, func(dir string) string { return "is not a regular file" }},
		{"CA of another user", func(t *testing.T, dir string) { poseAs(t, os.Getuid()+4242) },
			func(dir string) string { return "not to you" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if _, err := Init(dir, epoch); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			dirMode, keyMode := permOf(t, dir), permOf(t, filepath.Join(dir, KeyFile))
			ca, err := Load(dir)
			if err == nil {
				t.Fatalf("Load accepted the CA (%s)", ca.Fingerprint())
			}
			if want := tc.want(dir); !strings.Contains(err.Error(), want) {
				t.Errorf("Load error = %v; want it to contain %q", err, want)
			}
			if permOf(t, dir) != dirMode || permOf(t, filepath.Join(dir, KeyFile)) != keyMode {
				t.Error("Load changed a mode: it must refuse, not repair")
			}
		})
	}
}

// Root may load another user's CA (sudo ecrgate ca install --dir
// ~user/.local/share/ecrgate/ca); an ordinary user only their own.
func TestLoadOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := Init(dir, epoch); err != nil {
		t.Fatal(err)
	}
	poseAs(t, os.Getuid())
	if _, err := Load(dir); err != nil {
		t.Errorf("the owner cannot load the CA: %v", err)
	}
	poseAs(t, 0)
	if _, err := Load(dir); err != nil {
		t.Errorf("root cannot load the CA: %v", err)
	}
	if os.Getuid() != 0 {
		return
	}
	poseAs(t, 4242) // an ordinary user; the files are root's
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "belongs to user id 0") {
		t.Errorf("user 4242 loading root's CA: %v", err)
	}
	for _, p := range []string{dir, filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)} {
		if err := os.Chown(p, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(dir); err != nil {
		t.Errorf("user 4242 cannot load its own CA: %v", err)
	}
}

// Init into an existing directory that is not private refuses and writes
// no key there.
func TestInitRefusesAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmodT(t, dir, 0o755)
	_, err := Init(dir, epoch)
	if err == nil || !strings.Contains(err.Error(), `run "chmod 700 `+dir+`"`) {
		t.Fatalf("Init into a 0755 directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("Init wrote a key into a directory others can read")
	}
	chmodT(t, dir, 0o700)
	if _, err := Init(dir, epoch); err != nil {
		t.Errorf("Init into an existing private directory: %v", err)
	}
}

func chmodT(t *testing.T, path string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
}
