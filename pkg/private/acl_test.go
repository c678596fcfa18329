package private

import (
	"os"
	"runtime"
	"testing"
)

// The icacls command an OpenACL problem suggests, built on any system.
func TestACLProblemCommand(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dir    bool
		others []string
		want   string
	}{
		{"file", false, []string{`BUILTIN\Users`},
			`icacls "C:\x\k.pem" /inheritance:r /grant:r "%USERNAME%:F" "SYSTEM:F" /remove "BUILTIN\Users"`},
		{"directory", true, []string{"Everyone", "S-1-5-21-1-2-3-1001"},
			`icacls "C:\x\k.pem" /inheritance:r /grant:r "%USERNAME%:(OI)(CI)F" "SYSTEM:(OI)(CI)F" /remove "Everyone" *S-1-5-21-1-2-3-1001`},
		{"notes only", false, []string{"(entry 2 of type 5)"},
			`icacls "C:\x\k.pem" /inheritance:r /grant:r "%USERNAME%:F" "SYSTEM:F"`},
	} {
		p := aclProblem(`C:\x\k.pem`, tc.dir, tc.others)
		if p.Kind != OpenACL || p.Command != tc.want {
			t.Errorf("%s: kind %d, command\n%s\nwant\n%s", tc.name, p.Kind, p.Command, tc.want)
		}
		if p.Error() == "" {
			t.Errorf("%s: empty message", tc.name)
		}
	}
}

// Restrict leaves a new directory and a file created in it to the current
// user: nothing to do but succeed where modes do it, a clean ACL on Windows.
func TestRestrict(t *testing.T) {
	dir := t.TempDir() + string(os.PathSeparator) + "private"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Restrict(dir); err != nil {
		t.Fatal(err)
	}
	f := dir + string(os.PathSeparator) + "secret"
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Restrict(f); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, f} {
		if pr := ACL(p); pr != nil {
			t.Errorf("%s: %v", p, pr)
		}
	}
	if runtime.GOOS == "windows" {
		return
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, f: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode changed (%v, %v)", p, st, err)
		}
	}
}
