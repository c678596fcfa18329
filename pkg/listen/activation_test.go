//go:build unix

package listen

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tcpFile returns a listener on a free loopback port and a duplicate of its
// descriptor, as systemd would pass it.
func tcpFile(t *testing.T) (net.Listener, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return ln, f
}

func TestListenersFromFiles(t *testing.T) {
	reg, regFile := tcpFile(t)
	adm, admFile := tcpFile(t)
	got, err := listeners([]*os.File{regFile, admFile}, []string{"registry", "admin"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, ln := range got {
			ln.Close()
		}
	}()
	if len(got) != 2 {
		t.Fatalf("got %d listeners, want 2: %v", len(got), got)
	}
	for name, orig := range map[string]net.Listener{"registry": reg, "admin": adm} {
		ln := got[name]
		if ln == nil {
			t.Fatalf("no listener %q", name)
		}
		if ln.Addr().String() != orig.Addr().String() {
			t.Errorf("%s listens on %v, want %v", name, ln.Addr(), orig.Addr())
		}
		orig.Close() // the passed socket must work on its own
		roundTrip(t, ln)
	}
	if regFile.Fd() != ^uintptr(0) || admFile.Fd() != ^uintptr(0) {
		t.Error("the passed descriptors were left open")
	}

	// TCP prefers the activated socket and ignores the configured address.
	ln, err := TCP(context.Background(), "registry", "127.0.0.1:1", got)
	if err != nil || ln != got["registry"] {
		t.Errorf("TCP(registry) = %v, %v; want the activated listener", ln, err)
	}
}

func TestListenersErrors(t *testing.T) {
	t.Run("duplicate name", func(t *testing.T) {
		_, f1 := tcpFile(t)
		_, f2 := tcpFile(t)
		_, err := listeners([]*os.File{f1, f2}, []string{"registry", "registry"})
		if err == nil || !strings.Contains(err.Error(), `more than one socket is named "registry"`) {
			t.Errorf("err = %v, want the duplicate name reported", err)
		}
	})
	t.Run("datagram socket", func(t *testing.T) {
		_, f1 := tcpFile(t)
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		f2, err := pc.(*net.UDPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		got, err := listeners([]*os.File{f1, f2}, []string{"registry", "admin"})
		if got != nil || err == nil || !strings.Contains(err.Error(), `descriptor 4 ("admin") is not a listening stream socket`) {
			t.Errorf("listeners = %v, %v; want no listeners and an error naming descriptor 4", got, err)
		}
	})
}

// TestListenersActivated passes two sockets to a child process as fds 3 and
// 4 with the environment systemd sets, and checks the child finds them by
// name with Listeners.
func TestListenersActivated(t *testing.T) {
	reg, regFile := tcpFile(t)
	adm, admFile := tcpFile(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestActivatedChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ECRGATE_ACTIVATION_CHILD=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=registry:admin")
	cmd.ExtraFiles = []*os.File{regFile, admFile} // fds 3 and 4
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"registry=" + reg.Addr().String(), "admin=" + adm.Addr().String()} {
		if !slices.Contains(strings.Fields(string(out)), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

// TestActivatedChild is the child of TestListenersActivated. LISTEN_PID can
// only be known after the fork, so it adds it itself, as systemd does.
func TestActivatedChild(t *testing.T) {
	if os.Getenv("ECRGATE_ACTIVATION_CHILD") != "1" {
		t.Skip("run by TestListenersActivated")
	}
	got, err := Listeners(append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d listeners, want 2", len(got))
	}
	for _, name := range []string{"registry", "admin"} {
		ln := got[name]
		if ln == nil {
			t.Fatalf("no listener %q", name)
		}
		roundTrip(t, ln)
		fmt.Printf("%s=%s\n", name, ln.Addr())
		ln.Close()
	}
}
