package listen

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestParseEnv(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name    string
		env     []string
		want    []string
		wantErr string
	}{
		{name: "not activated", env: []string{"HOME=/home/u"}},
		{name: "for another process", env: []string{"LISTEN_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=registry:admin"}},
		{name: "named", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=2", "LISTEN_FDNAMES=registry:admin"}, want: []string{"registry", "admin"}},
		{name: "unnamed", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=2"}, want: []string{"unknown", "unknown"}},
		{name: "last entry wins", env: []string{"LISTEN_PID=1", "LISTEN_PID=4242", "LISTEN_FDS=1", "LISTEN_FDNAMES=admin"}, want: []string{"admin"}},
		{name: "zero fds", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=0"}},
		{name: "no LISTEN_FDS", env: []string{"LISTEN_PID=4242"}},
		{name: "bad pid", env: []string{"LISTEN_PID=me", "LISTEN_FDS=1"}, wantErr: `LISTEN_PID="me" is not a process id`},
		{name: "bad count", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=two"}, wantErr: `LISTEN_FDS="two" is not a number`},
		{name: "negative count", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=-1"}, wantErr: `LISTEN_FDS="-1"`},
		{name: "huge count", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=100000"}, wantErr: `LISTEN_FDS="100000"`},
		{name: "names mismatch", env: []string{"LISTEN_PID=4242", "LISTEN_FDS=2", "LISTEN_FDNAMES=registry"}, wantErr: `names 1 descriptors, LISTEN_FDS=2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEnv(tc.env, pid)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseEnv = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseEnv = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestListenersNotActivated(t *testing.T) {
	got, err := Listeners([]string{"LISTEN_PID=1", "LISTEN_FDS=1"}) // pid 1 is never the test
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Listeners = %v, %v; want an empty map", got, err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		wantErr string // "" = loopback
	}{
		{"127.0.0.1:5000", ""},
		{"127.1.2.3:5000", ""},
		{"[::1]:5000", ""},
		{"[::1%lo]:5000", ""},
		{"[::ffff:127.0.0.1]:5000", ""},
		{"localhost:5000", ""},
		{"LocalHost.:5000", ""},
		{":5000", "listens on every network interface"},
		{"0.0.0.0:5000", "listens on every network interface"},
		{"[::]:5000", "listens on every network interface"},
		{"192.168.1.10:5000", "is not a loopback address"},
		{"[fe80::1%eth0]:5000", "is not a loopback address"},
		{"registry.example.com:5000", "names a host other than localhost"},
		{"localhost.example.com:5000", "names a host other than localhost"},
		{"127.0.0.1", "is not host:port"},
	} {
		err := CheckLoopback(tc.addr)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("CheckLoopback(%q) = %v, want nil", tc.addr, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("CheckLoopback(%q) = %v, want an error containing %q", tc.addr, err, tc.wantErr)
		case tc.wantErr != "" && tc.wantErr != "is not host:port" && !strings.Contains(err.Error(), "listen on 127.0.0.1:5000 (ecrgate listens on loopback only)"):
			t.Errorf("CheckLoopback(%q) = %v; want it to say what to do", tc.addr, err)
		}
	}
}

func TestTCPListensWithoutActivation(t *testing.T) {
	activated := map[string]net.Listener{}
	ln, err := TCP(context.Background(), "registry", "127.0.0.1:0", activated)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("listening on %v, want 127.0.0.1", ln.Addr())
	}
	roundTrip(t, ln)

	_, err = TCP(context.Background(), "registry", ln.Addr().String(), nil)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("TCP on a port in use = %v, want EADDRINUSE naming %s", err, ln.Addr())
	}
}

// roundTrip dials ln and checks that it accepts the connection and carries
// bytes both ways.
func roundTrip(t *testing.T, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil {
			done <- err
			return
		}
		_, err = c.Write(buf)
		done <- err
	}()
	c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v; want ping", buf, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
