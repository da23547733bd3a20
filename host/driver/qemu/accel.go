package qemu

import "fmt"

// hostAccel is the hardware accelerator QEMU offers on goos, or "" for
// none. Windows' WHPX and macOS's HVF run only guests of the host's own
// architecture, as does KVM.
func hostAccel(goos string) string {
	switch goos {
	case "linux":
		return AccelKVM
	case "darwin":
		return AccelHVF
	case "windows":
		return AccelWHPX
	}
	return ""
}

// chooseAccel picks the accelerator for a guest of guestArch on a host of
// goos/hostArch. usable reports whether the host's accelerator can be used
// (for KVM: /dev/kvm opens read-write). WHPX is not probed: QEMU is given a
// TCG fallback instead (see accelArgs).
func chooseAccel(goos, hostArch, guestArch string, usable func(accel string) bool) string {
	acc := hostAccel(goos)
	if acc == "" || hostArch != guestArch {
		return AccelTCG
	}
	if acc == AccelWHPX || usable(acc) {
		return acc
	}
	return AccelTCG
}

// checkAccel validates an accelerator the user forced.
func checkAccel(accel string) error {
	switch accel {
	case AccelKVM, AccelHVF, AccelWHPX, AccelTCG:
		return nil
	}
	return fmt.Errorf("unknown QEMU accelerator %q (want kvm, hvf, whpx or tcg)", accel)
}
