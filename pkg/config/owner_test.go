package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// poseAs makes Load believe it runs as user id uid.
func poseAs(t *testing.T, uid int) {
	t.Helper()
	old := euid
	euid = func() int { return uid }
	t.Cleanup(func() { euid = old })
}

// endpointsConfig names a registry whose tokens would go to endpoints of
// the file's choosing.
const endpointsConfig = `default_registry: ` + acct1 + `
registries:
  - host: ` + acct1 + `
    endpoint: http://127.0.0.1:1/
    api_endpoint: http://127.0.0.1:2/
`

// writeMode writes a config file at dir/name with exactly mode m (no umask)
// in a directory with mode dm.
func writeMode(t *testing.T, dir, name string, m, dm os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(endpointsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{p, m}, {dir, dm}} {
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Whoever can edit the config can set endpoint: and api_endpoint: and
// receive the tokens: Load (serve, setup, ca, explain, doctor, config check)
// refuses a file that others can write, or that sits in a directory others
// can write, naming the path and the fix. Others reading it is fine.
func TestLoadRefusesConfigOthersCanWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and owners are not checked on Windows")
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (path string)
		want  string // "" for accepted; else in the error, with "%s" for the path given
	}{
		{"private file", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o600, 0o700)
		}, ""},
		{"file others can read", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o644, 0o755)
		}, ""},
		{"file the group can write", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o664, 0o755)
		}, `%s: other users can change this file (mode 0664) and make ecrgate send your registry tokens where they choose, so ecrgate refuses it: run "chmod go-w %s"`},
		{"file others can write", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o602, 0o700)
		}, `(mode 0602)`},
		{"directory the group can write", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o600, 0o770)
		}, `the directory DIR that holds this file (mode 0770)`},
		{"file and directory the group can write (a umask of 002)", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o664, 0o775)
		}, `%s: other users can change this file (mode 0664) and the directory DIR that holds it (mode 0775) and make ecrgate send your registry tokens where they choose, so ecrgate refuses it: run "chmod go-w %s DIR"`},
		{"directory others can write, sticky (as /tmp)", func(t *testing.T) string {
			return writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o600, 0o777|os.ModeSticky)
		}, ""},
		{"symbolic link in an open directory to a private file", func(t *testing.T) string {
			target := writeMode(t, filepath.Join(t.TempDir(), "real"), "config.yaml", 0o644, 0o755)
			link := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, ""},
		{"symbolic link to a file the group can write", func(t *testing.T) string {
			target := writeMode(t, filepath.Join(t.TempDir(), "real"), "config.yaml", 0o664, 0o755)
			link := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, `(mode 0664)`},
		{"symbolic link to a file in a directory others can write", func(t *testing.T) string {
			target := writeMode(t, filepath.Join(t.TempDir(), "real"), "config.yaml", 0o644, 0o777)
			link := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, `/real that holds this file (mode 0777)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t)
			c, err := Load(path, testEnv)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load = %v", err)
				}
				if c.Registries[0].APIEndpoint == "" {
					t.Error("api_endpoint of an accepted file was dropped")
				}
				return
			}
			want := strings.ReplaceAll(strings.ReplaceAll(tc.want, "%s", path), "DIR", filepath.Dir(path))
			if err == nil || c != nil || !errors.Is(err, ErrOthersCanWrite) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Load = %v, %v; want ErrOthersCanWrite and %q", c, err, want)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

// A file another user owns is refused (they can rewrite it), even by root;
// a file root owns is fine for everyone (/etc/ecrgate/config.yaml).
func TestLoadRefusesConfigOfAnotherUser(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("owners are not checked on Windows")
	}
	path := writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o644, 0o755)
	me := os.Geteuid()
	if me != 0 {
		// The file is ours: pose as the next user.
		poseAs(t, me+1)
		_, err := Load(path, testEnv)
		if !errors.Is(err, ErrOthersCanWrite) || !strings.Contains(err.Error(), "belongs to user id") {
			t.Fatalf("Load of another user's file = %v; want ErrOthersCanWrite", err)
		}
		return
	}
	poseAs(t, 4242)
	if _, err := Load(path, testEnv); err != nil {
		t.Fatalf("Load of root's file by user 4242 = %v; want it accepted", err)
	}
	if err := os.Chown(path, 4343, 4343); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []int{4242, 0} {
		poseAs(t, uid)
		_, err := Load(path, testEnv)
		want := "this file belongs to user id 4343, neither you (user id " + strconv.Itoa(uid) + ") nor root"
		if !errors.Is(err, ErrOthersCanWrite) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "copy it to a file of your own") {
			t.Errorf("Load as %d = %v; want ErrOthersCanWrite and %q", uid, err, want)
		}
	}
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Dir(path), 4343, 4343); err != nil {
		t.Fatal(err)
	}
	poseAs(t, 4242)
	if _, err := Load(path, testEnv); !errors.Is(err, ErrOthersCanWrite) || !strings.Contains(err.Error(), "move the file to a directory of your own") {
		t.Errorf("Load from another user's directory = %v; want ErrOthersCanWrite", err)
	}
	poseAs(t, 4343)
	if _, err := Load(path, testEnv); err != nil {
		t.Errorf("Load of root's file from the user's own directory = %v", err)
	}
}

// The helper and the fetcher only warn about a file others can write (a
// umask of 002 must not break every docker command), but they drop its
// endpoint overrides, so the token never goes where another user chose.
func TestLoadTolerantIgnoresEndpointsOthersCouldSet(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and owners are not checked on Windows")
	}
	good := writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o644, 0o755)
	c, warn, err := LoadTolerant(good, testEnv)
	if err != nil || warn != nil || c.Registries[0].Endpoint == "" || c.Registries[0].APIEndpoint == "" {
		t.Fatalf("LoadTolerant(private file) = %+v, %v, %v; want its endpoints and no warning", c, warn, err)
	}

	open := writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o664, 0o755)
	c, warn, err = LoadTolerant(open, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Registries[0]; r.Endpoint != "" || r.APIEndpoint != "" || r.Host != acct1 || c.DefaultRegistry != acct1 {
		t.Errorf("registry = %+v, default %q; want the endpoints dropped and the rest kept", r, c.DefaultRegistry)
	}
	want := open + `: other users can change this file (mode 0664) and make ecrgate send your registry tokens where they choose, so its registries[0].endpoint and registries[0].api_endpoint are ignored: run "chmod go-w ` + open + `"`
	if warn == nil || warn.Error() != want || !errors.Is(warn, ErrOthersCanWrite) {
		t.Errorf("warning = %v\nwant %s", warn, want)
	}

	bad := writeMode(t, filepath.Join(t.TempDir(), "c"), "config.yaml", 0o664, 0o755)
	if err := os.WriteFile(bad, []byte("log_levle: debug\n"), 0o664); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadTolerant(bad, testEnv); err == nil || errors.Is(err, ErrOthersCanWrite) {
		t.Errorf("LoadTolerant(invalid file) error = %v; want the file's own problem", err)
	}
}

// A repository policy in an "@file" decides who may pull or push every
// repository created from its template: Load refuses one that others could
// have changed, naming the key and line; the credential helper's
// LoadTolerant reads no policy and is not stopped by it.
func TestLoadRefusesPolicyFilesOthersCanWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and owners are not checked on Windows")
	}
	dir := filepath.Join(t.TempDir(), "c")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "pull.json")
	if err := os.WriteFile(policy, []byte(`{"Version":"2012-10-17","Statement":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	yaml := "default_registry: " + acct1 + "\ntemplates:\n  - prefix: team\n    repository_policy: \"@pull.json\"\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfgPath, nil); err != nil {
		t.Fatalf("private policy file: %v", err)
	}
	if err := os.Chmod(policy, 0o664); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfgPath, nil)
	if err == nil || !strings.Contains(err.Error(), "config.yaml:4") || !strings.Contains(err.Error(), "templates[0].repository_policy") ||
		!strings.Contains(err.Error(), `other users can change `+policy) || !strings.Contains(err.Error(), `chmod go-w `+policy) {
		t.Errorf("group-writable policy file: %v", err)
	}
	if cfg, warn, err := LoadTolerant(cfgPath, nil); err != nil || warn != nil || cfg == nil {
		t.Errorf("LoadTolerant over a loose policy file: %v, %v", warn, err)
	}
	if err := os.Chmod(policy, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(policy, 4242, 0); err != nil {
		t.Fatal(err)
	}
	poseAs(t, 4343)
	if err := os.Chown(dir, 4343, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cfgPath, 4343, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(cfgPath, nil); err == nil || !strings.Contains(err.Error(), "belongs to user id 4242") {
		t.Errorf("another user's policy file: %v", err)
	}
}
