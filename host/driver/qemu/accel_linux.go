package qemu

import (
	"os"
	"path/filepath"
	"runtime"
)

// accelUsable reports whether KVM can be used: /dev/kvm exists, this user
// may open it read-write (membership of the kvm group, usually), and on x86
// it is hardware virtualization (kvmHardware).
func accelUsable(accel string) bool {
	if accel != AccelKVM {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return kvmHardware("/sys/module", runtime.GOARCH)
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
