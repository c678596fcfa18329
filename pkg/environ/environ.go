// Package environ reads an environment given as a list of "NAME=value"
// entries, the way ecrgate passes it everywhere (os.Environ() in main, a
// list of a test's own making in tests), so no code reads the process's
// environment behind a caller's back. As for a child process started with
// such a list, the last entry of a name wins.
package environ

import (
	"slices"
	"strings"
)

// Lookup returns the value of name in env and whether it is set.
func Lookup(env []string, name string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// Get returns the value of name in env, "" when it is unset.
func Get(env []string, name string) string {
	v, _ := Lookup(env, name)
	return v
}

// Map returns env as a map; entries without "=" are skipped.
func Map(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
