//go:build unix

package listen

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string // "" = accepted
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, ""},
		{&net.TCPAddr{IP: net.IPv4(127, 9, 9, 9), Port: 5000}, ""},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, ""},
		{&net.UnixAddr{Name: "/run/ecrgate.sock", Net: "unix"}, ""},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 5000}, "every network interface"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 5000}, "every network interface"},
		{&net.TCPAddr{IP: net.IPv4(192, 168, 1, 10), Port: 5000}, "not a loopback address"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5000, Zone: "eth0"}, "not a loopback address"},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, "not on loopback TCP"},
	} {
		err := checkAddr(tc.addr)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkAddr(%v) = %v, want %q", tc.addr, err, tc.want)
		}
	}
}

// boundFile returns a TCP socket bound to ip on a free port but never
// listening (so nothing can connect to it), as a file, the way systemd would
// pass a socket of a .socket unit with ListenStream=<ip>:<port>.
func boundFile(t *testing.T, ip [4]byte) *os.File {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bound")
	t.Cleanup(func() { f.Close() })
	return f
}

// A socket systemd passes in is held to the same rule as the config's
// listen addresses: a .socket unit with ListenStream=5000 (every interface)
// is refused, with the fix, and the socket is closed.
func TestActivatedSocketMustBeLoopback(t *testing.T) {
	_, good := tcpFile(t)
	bad := boundFile(t, [4]byte{0, 0, 0, 0})
	got, err := listeners([]*os.File{good, bad}, []string{"registry", "admin"})
	if err == nil {
		for _, ln := range got {
			ln.Close()
		}
		t.Fatal("an activated socket on every interface was accepted")
	}
	for _, want := range []string{`the socket named "admin" listens on 0.0.0.0:`, "every network interface", "ListenStream=127.0.0.1:<port>"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got != nil {
		t.Errorf("listeners returned %v with the error", got)
	}

	// A Unix socket only reaches this machine: accepted.
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "ecrgate.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	uf, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	got, err = listeners([]*os.File{uf}, []string{"registry"})
	if err != nil {
		t.Fatalf("a Unix socket: %v", err)
	}
	got["registry"].Close()
}

func TestIsLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:5000", true},
		{"LOCALHOST.:5000", true},
		{"registry.localhost:5000", true},
		{"127.0.0.1", true},
		{"127.0.0.1:5000", true},
		{"127.1.2.3:80", true},
		{"[::1]:5000", true},
		{"::1", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"[fe80::1%lo]:5000", false},
		{"host.docker.internal:5000", false},
		{"localhost.example.com:5000", false},
		{"mylocalhost:5000", false},
		{"10.0.0.1:5000", false},
		{"0.0.0.0:5000", false},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", false},
		{"", false},
	} {
		if got := IsLoopbackHost(tc.host); got != tc.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}
