// Package sdnotify tells systemd how a Type=notify service is doing, with the
// sd_notify(3) protocol: one datagram of NEWLINE-separated VAR=value
// assignments sent to the unix socket named by $NOTIFY_SOCKET.
//
// Every function is a silent no-op when NOTIFY_SOCKET is unset (the program
// was not started by systemd as a notify service) and on systems other than
// Linux, so callers need not check where they run. The protocol is stable
// (https://systemd.io/PORTABILITY_AND_STABILITY/); this package needs only
// the standard library.
package sdnotify

import (
	"os"
	"strings"
)

// Ready tells systemd that start-up has finished: the listeners are open
// and requests are served. systemd then considers the unit active and
// starts the units ordered after it.
func Ready() error { return notify(os.Getenv("NOTIFY_SOCKET"), "READY=1") }

// Stopping tells systemd that the service has begun to shut down (draining
// in-flight requests), so a stop it did not ask for is not taken for a crash.
func Stopping() error { return notify(os.Getenv("NOTIFY_SOCKET"), "STOPPING=1") }

// Status sets the one-line status text that systemctl status shows, such as
// "serving 127.0.0.1:5000". Line breaks in msg become spaces.
func Status(msg string) error { return notify(os.Getenv("NOTIFY_SOCKET"), statusLine(msg)) }

// statusLine is the STATUS= assignment for msg, kept to one line so it
// cannot smuggle in another assignment.
func statusLine(msg string) string {
	return "STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg)
}
