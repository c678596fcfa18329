// Package listen opens ecrgate's listeners: the sockets systemd passes in
// (socket activation, sd_listen_fds(3)) when there are any, else fresh TCP
// listeners, and the check that keeps an unauthenticated listener on
// loopback.
//
// Socket activation needs only the standard library: systemd passes the
// sockets as file descriptors 3, 4, … and describes them in the environment
// (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES); a .socket unit's
// FileDescriptorName= names them ("registry", "admin"), and the service asks
// for them by that name.
package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrgate/ecrgate/pkg/environ"
)

// firstFD is the first file descriptor systemd passes (SD_LISTEN_FDS_START).
const firstFD = 3

// maxFDs bounds LISTEN_FDS, so a corrupt value cannot make us wrap millions
// of descriptors.
const maxFDs = 1024

// Listeners returns the stream sockets systemd passed to this process, by
// their FileDescriptorName= (names default to "unknown", as in
// sd_listen_fds_with_names(3)). env is the environment ("NAME=value"
// entries, os.Environ() in main). Without socket activation (LISTEN_PID
// unset or naming another process) it returns an empty map and no error.
//
// The descriptors are taken over: each is turned into a net.Listener and the
// original closed, so call Listeners once. It does not unset the LISTEN_*
// variables; a program that starts children should, so they do not take
// the variables for their own.
func Listeners(env []string) (map[string]net.Listener, error) {
	names, err := parseEnv(env, os.Getpid())
	if err != nil || len(names) == 0 {
		return map[string]net.Listener{}, err
	}
	files := make([]*os.File, len(names))
	for i, name := range names {
		files[i] = os.NewFile(uintptr(firstFD+i), name)
	}
	return listeners(files, names)
}

// parseEnv reads the socket-activation variables for the process pid and
// returns one name per passed descriptor (fd 3 first), or none when the
// variables are unset or meant for another process.
func parseEnv(env []string, pid int) ([]string, error) {
	pidText := environ.Get(env, "LISTEN_PID")
	if pidText == "" {
		return nil, nil
	}
	forPID, err := strconv.Atoi(pidText)
	if err != nil || forPID <= 0 {
		return nil, fmt.Errorf("socket activation: LISTEN_PID=%q is not a process id", pidText)
	}
	if forPID != pid {
		return nil, nil // inherited from a parent that was activated itself
	}
	nText := environ.Get(env, "LISTEN_FDS")
	if nText == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(nText)
	if err != nil || n < 0 || n > maxFDs {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q is not a number of descriptors (0 to %d)", nText, maxFDs)
	}
	if n == 0 {
		return nil, nil
	}
	namesText, ok := environ.Lookup(env, "LISTEN_FDNAMES")
	if !ok {
		return slices.Repeat([]string{"unknown"}, n), nil
	}
	names := strings.Split(namesText, ":")
	if len(names) != n {
		return nil, fmt.Errorf("socket activation: LISTEN_FDNAMES=%q names %d descriptors, LISTEN_FDS=%d", namesText, len(names), n)
	}
	return names, nil
}

// listeners turns the passed descriptors into listeners keyed by name. It
// closes every file (net.FileListener keeps a close-on-exec duplicate); on
// error it closes the listeners it made too.
func listeners(files []*os.File, names []string) (map[string]net.Listener, error) {
	out := make(map[string]net.Listener, len(files))
	var errs []error
	for i, f := range files {
		name := names[i]
		ln, lerr := net.FileListener(f)
		f.Close()
		switch {
		case lerr != nil:
			errs = append(errs, fmt.Errorf("socket activation: descriptor %d (%q) is not a listening stream socket; use ListenStream= in the .socket unit: %w", firstFD+i, name, lerr))
		case out[name] != nil:
			ln.Close()
			errs = append(errs, fmt.Errorf("socket activation: more than one socket is named %q; give each .socket unit its own FileDescriptorName=", name))
		default:
			if err := checkAddr(ln.Addr()); err != nil {
				ln.Close()
				errs = append(errs, fmt.Errorf("socket activation: the socket named %q %w, and ecrgate serves pushes without authentication of its own: use ListenStream=127.0.0.1:<port> in its .socket unit (ecrgate listens on loopback only)", name, err))
				continue
			}
			out[name] = ln
		}
	}
	if err := errors.Join(errs...); err != nil {
		for _, ln := range out {
			ln.Close()
		}
		return nil, err
	}
	return out, nil
}

// TCP returns the activated listener called name if systemd passed one, and
// otherwise listens on addr (host:port) itself. When an activated socket is
// used, addr is ignored: the .socket unit decides the address. The error
// of a failed listen is the *net.OpError, which names the address already
// ("listen tcp 127.0.0.1:5000: bind: address already in use"; errors.Is
// finds syscall.EADDRINUSE in it). A listener that ends up on an address
// other than loopback (a name like localhost that resolved elsewhere) is
// closed and refused: check addr with CheckLoopback first for the clearer
// error.
func TCP(ctx context.Context, name, addr string, activated map[string]net.Listener) (net.Listener, error) {
	if ln, ok := activated[name]; ok && ln != nil {
		return ln, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := checkAddr(ln.Addr()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen address %q %w, and ecrgate serves pushes there without authentication of its own; listen on 127.0.0.1 (ecrgate listens on loopback only)", addr, err)
	}
	return ln, nil
}

// checkAddr returns an error unless a listener's address is on loopback: a
// loopback IP, or a Unix socket, which only this machine reaches.
func checkAddr(a net.Addr) error {
	switch a := a.(type) {
	case *net.TCPAddr:
		if a.IP.IsLoopback() {
			return nil
		}
		if a.IP.IsUnspecified() {
			return fmt.Errorf("listens on %s, every network interface", a)
		}
		return fmt.Errorf("listens on %s, which is not a loopback address", a)
	case *net.UnixAddr:
		return nil
	case nil:
		return errors.New("has no address")
	default:
		return fmt.Errorf("listens on %s %s, not on loopback TCP", a.Network(), a)
	}
}

// CheckLoopback returns an error unless addr (host:port, as in the
// configuration or from a listener's Addr) is on loopback: an IP address in
// 127.0.0.0/8 or ::1, or the name localhost. An empty host or 0.0.0.0 / ::
// means every interface and is refused, and so is any other host name, since
// it may resolve beyond this machine.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port; write it like 127.0.0.1:5000", addr)
	}
	var why string
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return nil
	}
	switch ip, perr := netip.ParseAddr(host); {
	case host == "" || perr == nil && ip.IsUnspecified():
		why = "listens on every network interface"
	case perr != nil:
		why = "names a host other than localhost"
	case ip.IsLoopback():
		return nil
	default:
		why = "is not a loopback address"
	}
	return fmt.Errorf("listen address %q %s, and ecrgate serves pushes there without authentication of its own; listen on %s (ecrgate listens on loopback only)",
		addr, why, net.JoinHostPort("127.0.0.1", port))
}

// IsLoopbackHost reports whether host, or host:port, as it appears in an
// image name or a Host header, names this machine: localhost or a name
// under .localhost (RFC 6761), or an address in 127.0.0.0/8 or ::1
// (bracketed or not, with or without a zone).
func IsLoopbackHost(hostport string) bool {
	h := strings.ToLower(strings.TrimSpace(hostport))
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	if i := strings.IndexByte(h, '%'); i >= 0 {
		h = h[:i]
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

// Remote listens on addr (host:port) without the loopback check of TCP:
// only for a listener that config.Config.CheckListen allowed off loopback
// (allow_remote: true, with TLS for the registry and intercept listeners).
// Socket activation still passes loopback sockets only (Listeners).
func Remote(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
