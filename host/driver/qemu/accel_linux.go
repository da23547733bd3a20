package qemu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// accelProblem says why KVM cannot be used, or nil: /dev/kvm must exist,
// this user must be able to open it read-write (membership of the kvm
// group, usually), and on x86 it must be hardware virtualization
// (kvmHardware).
func accelProblem(accel string) error {
	if accel != AccelKVM {
		return fmt.Errorf("%s is not a Linux accelerator", accel)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("there is no /dev/kvm (virtualization is off in the firmware, the kvm_intel or kvm_amd module is not loaded, or this is a VM without nested virtualization)")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("/dev/kvm cannot be opened read-write by this user (join its group, usually kvm, and log in again)")
	case err != nil:
		return err
	}
	f.Close()
	if !kvmHardware("/sys/module", runtime.GOARCH) {
		return errors.New("/dev/kvm is not Intel or AMD hardware virtualization (neither kvm_intel nor kvm_amd is loaded; kvm_pvm, for one, runs only guest kernels built for it)")
	}
	return nil
}

// kvmHardware reports whether the x86 KVM behind /dev/kvm is Intel's or
// AMD's hardware virtualization, whose vendor module (kvm_intel or
// kvm_amd, listed in sysModule even when built in, for their parameters)
// is loaded. Some sandboxes offer /dev/kvm from another vendor module,
// such as kvm_pvm (pagetable-based virtualization, which needs a guest
// kernel built for it): there QEMU starts, but the Debian guest kernel
// stops in its first second with "KVM internal error ... emulation
// failure". TCG is the accelerator that works there. arm64 KVM has no
// vendor modules.
func kvmHardware(sysModule, goarch string) bool {
	if goarch != "amd64" && goarch != "386" {
		return true
	}
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat(filepath.Join(sysModule, m)); err == nil {
			return true
		}
	}
	return false
}
