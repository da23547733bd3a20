package qemu

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// accelProblem says why Hypervisor.framework cannot be used, or nil: the
// kern.hv_support sysctl is 1 on Macs whose CPU and OS support it.
func accelProblem(accel string) error {
	if accel != AccelHVF {
		return fmt.Errorf("%s is not a macOS accelerator", accel)
	}
	if v, err := unix.SysctlUint32("kern.hv_support"); err != nil || v != 1 {
		return errors.New("this Mac does not support Hypervisor.framework (kern.hv_support is not 1)")
	}
	return nil
}
