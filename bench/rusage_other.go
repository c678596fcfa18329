//go:build !unix

package main

import "time"

// selfCPU is not measured where getrusage(2) does not exist: the bench's
// tables are made on Linux (see README).
func selfCPU() time.Duration { return 0 }
