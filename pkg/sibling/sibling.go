// Package sibling finds the programs ecrgate's binaries run (the helper's
// ecrgate-fetch-token, ecrgate's ecrgate-emulator): the path an environment
// variable names, else the program beside the running binary, else the
// one on PATH. ".exe" is added on Windows.
package sibling

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/ecrgate/ecrgate/pkg/environ"
)

// ErrNotFound is returned when the program is in none of those places;
// callers say how to install it.
var ErrNotFound = errors.New("program not found")

// Find returns the path of the program name: $envVar (from env) when set,
// else name beside os.Executable(), else name on PATH.
func Find(name, envVar string, env []string) (string, error) {
	if p := environ.Get(env, envVar); p != "" {
		return p, nil
	}
	file := name
	if runtime.GOOS == "windows" {
		file += ".exe"
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), file)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", ErrNotFound
}
