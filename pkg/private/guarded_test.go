package private_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ecrgate/ecrgate/pkg/private"
)

// Guarded (the configuration: others may read, only you and root may
// change), Owned (the log: yours exactly, even as root) and SingleLink (no
// hard link into another of your files).
func TestGuardedOwnedSingleLink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("modes, owners and links are not checked on Windows")
	}
	dir := t.TempDir()
	me := os.Geteuid()
	other := me + 1
	if me == 0 {
		other = 4242
	}
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readable, groupWritable, otherWritable := mk("readable", 0o644), mk("group", 0o664), mk("other", 0o606)
	openDir, stickyDir, plainDir := mkdir("open", 0o777), mkdir("sticky", 0o777|os.ModeSticky), mkdir("plain", 0o755)
	linked := filepath.Join(dir, "linked")
	if err := os.Link(readable, linked); err != nil {
		t.Fatal(err)
	}
	single := mk("single", 0o600)
	stat := func(p string) os.FileInfo {
		st, err := os.Stat(p)
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
		{"readable file", private.Guarded(single, stat(single), me), 0},
		{"group-writable file", private.Guarded(groupWritable, stat(groupWritable), me), private.OpenMode},
		{"other-writable file", private.Guarded(otherWritable, stat(otherWritable), me), private.OpenMode},
		{"plain directory", private.Guarded(plainDir, stat(plainDir), me), 0},
		{"open directory", private.Guarded(openDir, stat(openDir), me), private.OpenMode},
		{"sticky directory", private.Guarded(stickyDir, stat(stickyDir), me), 0},
		{"another user's file", private.Guarded(single, stat(single), other), ownerKind(me)},
		{"root and the test user's file", private.Guarded(single, stat(single), 0), ownerKind(me)},
		{"own file", private.Owned(single, stat(single), me), 0},
		{"another user's file, for Owned", private.Owned(single, stat(single), other), private.OtherOwner},
		{"single link", private.SingleLink(single, stat(single)), 0},
		{"hard link", private.SingleLink(linked, stat(linked)), private.Linked},
	} {
		if k := kind(tc.got); k != tc.want {
			t.Errorf("%s: kind %d (%v), want %d", tc.name, k, tc.got, tc.want)
		}
	}
	if p := private.Guarded(groupWritable, stat(groupWritable), me); p.Mode != 0o664 {
		t.Errorf("mode %04o", p.Mode)
	}
}

// ownerKind is what Guarded says of a file of user me's for any other user:
// nothing when me is root (root's files are anyone's to trust), else that
// it belongs to another user (root included).
func ownerKind(me int) private.Kind {
	if me == 0 {
		return 0
	}
	return private.OtherOwner
}
