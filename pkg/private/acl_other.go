//go:build !windows

package private

// Restrict does nothing where files have modes: the mode a directory or
// file is created with (0700, 0600) makes it private. On Windows it sets a
// protected access control list for the current user and SYSTEM.
func Restrict(string) error { return nil }

// ACL reports nothing where files have modes: Dir and File check them. On
// Windows it checks the owner and the access control list.
func ACL(string) *Problem { return nil }
