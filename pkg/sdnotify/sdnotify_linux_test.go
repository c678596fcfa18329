package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket like systemd's notify socket and returns
// the NOTIFY_SOCKET value that reaches it.
func listen(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, name
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram on the notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, kind := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@ecrgate-sdnotify-test-" + strconv.Itoa(os.Getpid())},
	} {
		conn, socket := listen(t, kind.socket)
		for _, tc := range []struct {
			name string
			send func() error
			want string
		}{
			{"Ready", Ready, "READY=1"},
			{"Stopping", Stopping, "STOPPING=1"},
			{"Status", func() error { return Status("serving 127.0.0.1:5000") }, "STATUS=serving 127.0.0.1:5000"},
			{"Status one line", func() error { return Status("line one\nREADY=1\r\n") }, "STATUS=line one READY=1 "},
		} {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				t.Setenv("NOTIFY_SOCKET", socket)
				if err := tc.send(); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if got := receive(t, conn); got != tc.want {
					t.Errorf("%s sent %q, want %q", tc.name, got, tc.want)
				}
			})
		}
	}
}

// An "@" name is in the abstract namespace, not a file in the working
// directory.
func TestNotifyAbstractIsNotAFile(t *testing.T) {
	t.Chdir(t.TempDir())
	conn, socket := listen(t, "@ecrgate-sdnotify-abstract-"+strconv.Itoa(os.Getpid()))
	if err := notify(socket, "READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	if _, err := os.Lstat(socket); !os.IsNotExist(err) {
		t.Errorf("%s exists as a file (err %v); want an abstract socket", socket, err)
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, f := range map[string]func() error{"Ready": Ready, "Stopping": Stopping, "Status": func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET = %v, want nil", name, err)
		}
	}
}

func TestNotifyErrors(t *testing.T) {
	for _, tc := range []struct{ socket, want string }{
		{"relative/notify", "neither an absolute path nor an abstract socket"},
		{filepath.Join(t.TempDir(), "missing"), "sd_notify READY=1"},
	} {
		err := notify(tc.socket, "READY=1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("notify(%q) = %v, want an error containing %q", tc.socket, err, tc.want)
		}
	}
}
