//go:build unix

package main

import (
	"syscall"
	"time"
)

// selfCPU is the bench process's own user+system CPU time (the client and
// the in-process emulator).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
