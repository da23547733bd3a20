//go:build !(darwin && cgo)

package vz

import (
	"context"
	"errors"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
)

// ErrUnavailable is why the vz driver cannot run in this build.
var ErrUnavailable = errors.New("the vz driver needs macOS with cgo; use --driver qemu")

// Driver is the vz driver in a build without Virtualization.framework.
type Driver struct{}

var _ driver.Driver = Driver{}

// New returns the vz driver, which here only reports that it is
// unavailable. It returns the interface because the concrete type differs
// between this build and the macOS one.
func New() driver.Driver { return Driver{} }

// Name is "vz".
func (Driver) Name() string { return "vz" }

// GuestNetwork is DHCP, as under vz NAT.
func (Driver) GuestNetwork() vmconfig.Network { return GuestNetwork() }

// Available returns ErrUnavailable.
func (Driver) Available() error { return ErrUnavailable }

// GuestModules is empty: no guest boots with this driver here.
func (Driver) GuestModules(string) []string { return nil }

// GuestLateModules is empty: no guest boots with this driver here.
func (Driver) GuestLateModules(string) []string { return nil }

// GuestAgent is vsock, as in the macOS build.
func (Driver) GuestAgent() vmconfig.Agent { return GuestAgent() }

// Start returns ErrUnavailable.
func (Driver) Start(context.Context, driver.Spec) (driver.VM, error) { return nil, ErrUnavailable }
