package sibling

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFind(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Beside the running binary (the test binary's directory).
	beside := filepath.Join(filepath.Dir(self), "ecrgate-sibling-test")
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(beside)
	onPath := t.TempDir()
	if err := os.WriteFile(filepath.Join(onPath, "ecrgate-on-path-test"), []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", onPath)

	for _, tc := range []struct {
		name, envVar string
		env          []string
		want         string
		err          error
	}{
		{"ecrgate-sibling-test", "X_PROG", []string{"X_PROG=/opt/x"}, "/opt/x", nil},
		{"ecrgate-sibling-test", "X_PROG", nil, beside, nil},
		{"ecrgate-on-path-test", "X_PROG", nil, filepath.Join(onPath, "ecrgate-on-path-test"), nil},
		{"ecrgate-nowhere-test", "X_PROG", []string{"X_PROG="}, "", ErrNotFound},
	} {
		got, err := Find(tc.name, tc.envVar, tc.env)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Find(%q, %v) = %q, %v; want %q, %v", tc.name, tc.env, got, err, tc.want, tc.err)
		}
	}
}
