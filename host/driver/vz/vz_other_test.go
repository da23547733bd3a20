//go:build !(darwin && cgo)

package vz

import (
	"context"
	"errors"
	"testing"

	"github.com/vmbox/vmbox/host/driver"
)

func TestUnavailable(t *testing.T) {
	d := New()
	if d.Name() != "vz" {
		t.Fatalf("Name() = %q, want vz", d.Name())
	}
	if err := d.Available(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Available() = %v, want ErrUnavailable", err)
	}
	vm, err := d.Start(context.Background(), driver.Spec{Name: "x", Arch: "arm64", CPUs: 1, MemoryMiB: 512})
	if vm != nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Start() = %v, %v; want nil, ErrUnavailable", vm, err)
	}
	if got := err.Error(); got != "the vz driver needs macOS with cgo; use --driver qemu" {
		t.Fatalf("error text %q", got)
	}
}

func TestNoGuestModules(t *testing.T) {
	if m := New().GuestModules("arm64"); len(m) != 0 {
		t.Fatalf("GuestModules = %v from a driver that cannot start", m)
	}
}
