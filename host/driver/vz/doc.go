// Package vz is the driver that boots vmbox VMs with Apple's
// Virtualization.framework (through github.com/Code-Hex/vz/v3) on macOS 12
// or later, in the host process itself, reaching the guest agent over
// vsock (api.AgentPort; each connection is a plain SSH connection).
//
// The guest gets virtio-pci devices on either architecture (the guest's
// must be the Mac's): a virtio console (hvc0) appended to Spec.Console,
// vsock, a NAT network whose addresses come by DHCP (GuestNetwork says so
// to the guest), the data disk, an entropy source and a traditional memory
// balloon (the framework has no free page reporting).
// The kernel is booted directly (the uncompressed Image on arm64) with the
// initrds concatenated into one file.
//
// The framework is only reachable from a cgo build on macOS, by a binary
// signed with the com.apple.security.virtualization entitlement
// (vmbox.entitlements beside this file; make sign-darwin). Everywhere else
// (vz_other.go) New returns a driver that explains that and refuses to
// start. config.go holds what the macOS driver decides without the
// framework, so that it is tested on every host; the macOS file itself is
// type-checked from Linux by hack/typecheck (make typecheck-darwin).
package vz
