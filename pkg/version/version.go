// Package version holds the build version, set by the linker (see Makefile).
package version

// Version is overridden at build time with -ldflags -X.
var Version = "dev"
