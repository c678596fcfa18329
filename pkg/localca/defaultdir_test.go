package localca

import (
	"path/filepath"
	"runtime"
	"testing"
)

// defaultDir for Windows, decided on any system: %LOCALAPPDATA% where HOME
// is usually unset, XDG_DATA_HOME still first.
func TestDefaultDirWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the table's absolute paths are Unix ones")
	}
	for _, tc := range []struct {
		goos string
		env  []string
		want string
	}{
		{"windows", []string{"LOCALAPPDATA=/l"}, "/l/ecrgate/ca"},
		{"windows", []string{"HOME=/home/u", "LOCALAPPDATA=/l"}, "/l/ecrgate/ca"},
		{"windows", []string{"LOCALAPPDATA=/l", "XDG_DATA_HOME=/d"}, "/d/ecrgate/ca"},
		{"windows", []string{"HOME=/home/u", "LOCALAPPDATA=rel"}, "/home/u/.local/share/ecrgate/ca"},
		{"windows", nil, ""},
		{"linux", []string{"HOME=/home/u", "LOCALAPPDATA=/l"}, "/home/u/.local/share/ecrgate/ca"},
		{"linux", []string{"LOCALAPPDATA=/l"}, ""},
	} {
		if got := defaultDir(tc.goos, tc.env); got != filepath.FromSlash(tc.want) {
			t.Errorf("defaultDir(%s, %q) = %q, want %q", tc.goos, tc.env, got, tc.want)
		}
	}
}
