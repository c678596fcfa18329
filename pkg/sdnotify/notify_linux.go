package sdnotify

import (
	"fmt"
	"net"
)

// notify sends state as one datagram to socket, the value of NOTIFY_SOCKET:
// an absolute path, or an abstract socket name written with a leading "@"
// (Go's net package maps "@" to the abstract namespace itself). An empty
// socket means "not under systemd" and sends nothing.
func notify(socket, state string) error {
	if socket == "" {
		return nil
	}
	if socket[0] != '/' && socket[0] != '@' {
		return fmt.Errorf("sd_notify: NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket (@name)", socket)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}
