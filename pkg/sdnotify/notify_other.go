//go:build !linux

package sdnotify

// notify does nothing: systemd runs on Linux only.
func notify(socket, state string) error { return nil }
