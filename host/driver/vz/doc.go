// Package vz is the driver that boots vmbox VMs with Apple's
// Virtualization.framework (through github.com/Code-Hex/vz/v3) on macOS,
// reaching the guest agent over vsock (api.VsockPort).
//
// The framework is only reachable from a cgo build on macOS. Everywhere
// else (vz_other.go) New returns a driver that explains that and refuses to
// start. The macOS implementation (vz_darwin.go, built with darwin && cgo)
// is a later piece of work; until it lands, a macOS build with cgo has no
// New and must not import this package.
package vz
