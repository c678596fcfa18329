package tokencache

import (
	"path/filepath"
	"runtime"
	"testing"
)

// DefaultDir for each operating system, decided on any.
func TestDefaultDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the table's absolute paths are Unix ones")
	}
	for _, tc := range []struct {
		goos string
		env  []string
		want string
	}{
		{"linux", []string{"HOME=/home/u"}, "/home/u/.cache/ecrgate/tokens"},
		{"linux", []string{"HOME=/home/u", "XDG_CACHE_HOME=/c"}, "/c/ecrgate/tokens"},
		{"linux", []string{"HOME=/home/u", "XDG_CACHE_HOME=rel"}, "/home/u/.cache/ecrgate/tokens"},
		{"linux", []string{"HOME=/home/u", "LOCALAPPDATA=/l"}, "/home/u/.cache/ecrgate/tokens"},
		{"windows", []string{"LOCALAPPDATA=/l"}, "/l/ecrgate/tokens"},
		{"windows", []string{"HOME=/home/u", "LOCALAPPDATA=/l"}, "/l/ecrgate/tokens"},
		{"windows", []string{"LOCALAPPDATA=/l", "XDG_CACHE_HOME=/c"}, "/c/ecrgate/tokens"},
		{"windows", []string{"HOME=/home/u", "LOCALAPPDATA=rel"}, "/home/u/.cache/ecrgate/tokens"},
	} {
		if got := defaultDir(tc.goos, tc.env); got != filepath.FromSlash(tc.want) {
			t.Errorf("defaultDir(%s, %q) = %q, want %q", tc.goos, tc.env, got, tc.want)
		}
	}
}
