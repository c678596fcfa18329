package private_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/private"
)

func TestKinds(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes and owners are not checked on Windows")
	}
	dir := t.TempDir()
	me := os.Geteuid()
	other := me + 1
	if me == 0 {
		other = 4242
	}
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	tight, loose := mk("tight", 0o600), mk("loose", 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(tight, link)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	os.Chmod(dir, 0o755)

	lstat := func(p string) os.FileInfo {
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	kind := func(p *private.Problem) private.Kind {
		if p == nil {
			return 0
		}
		return p.Kind
	}
	for _, tc := range []struct {
		name string
		got  *private.Problem
		want private.Kind
	}{
		{"private file", private.File(tight, lstat(tight), me), 0},
		{"readable file", private.File(loose, lstat(loose), me), private.OpenMode},
		{"symlink", private.File(link, lstat(link), me), private.Symlink},
		{"directory as file", private.File(sub, lstat(sub), me), private.NotRegular},
		{"private dir", private.Dir(sub, lstat(sub), me), 0},
		{"open dir", private.Dir(dir, lstat(dir), me), private.OpenMode},
		{"file as dir", private.Dir(tight, lstat(tight), me), private.NotDir},
		{"another user's file", private.File(tight, lstat(tight), other), private.OtherOwner},
		{"root may use any owner", private.File(tight, lstat(tight), 0), 0},
	} {
		if k := kind(tc.got); k != tc.want {
			t.Errorf("%s: kind %d (%v), want %d", tc.name, k, tc.got, tc.want)
		}
	}
	if p := private.File(loose, lstat(loose), me); p.Mode != 0o644 {
		t.Errorf("mode %04o", p.Mode)
	}
	if p := private.File(tight, lstat(tight), other); p.Owner != me || p.User != other {
		t.Errorf("owner %d user %d", p.Owner, p.User)
	}
}
