// Package version holds the build's identity, stamped by the linker
// (-X github.com/vmbox/vmbox/internal/version.Version=...), shared by the
// host CLI and the guest agent so both report the same release.
package version

import "runtime"

// Stamped at link time by the Makefile; the defaults mark a development build.
var (
	Version   = "0.0.0-dev"
	GitCommit = "unknown"
	BuildTime = "unknown" // RFC 3339
)

// GoVersion is the Go toolchain that built this binary.
func GoVersion() string { return runtime.Version() }
