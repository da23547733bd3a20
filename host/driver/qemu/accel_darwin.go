package qemu

import "golang.org/x/sys/unix"

// accelUsable reports whether Hypervisor.framework is available: the
// kern.hv_support sysctl is 1 on Macs whose CPU and OS support it.
func accelUsable(accel string) bool {
	if accel != AccelHVF {
		return false
	}
	v, err := unix.SysctlUint32("kern.hv_support")
	return err == nil && v == 1
}
