package qemu

import (
	"fmt"
	"strings"
)

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
// goos/hostArch. problem says why the host's accelerator cannot be used
// (for KVM: /dev/kvm does not open read-write), or nil. WHPX is not
// probed: QEMU is given a TCG fallback instead (see accelArgs). When the
// choice is TCG, emulated says why, in words for the user.
func chooseAccel(goos, hostArch, guestArch string, problem func(accel string) error) (accel, emulated string) {
	acc := hostAccel(goos)
	switch {
	case acc == "":
		return AccelTCG, fmt.Sprintf("QEMU has no hardware accelerator on %s", goos)
	case hostArch != guestArch:
		return AccelTCG, fmt.Sprintf("an %s guest on an %s host", guestArch, hostArch)
	case acc == AccelWHPX:
		return acc, ""
	}
	if err := problem(acc); err != nil {
		return AccelTCG, fmt.Sprintf("%s is not usable: %v", strings.ToUpper(acc), err)
	}
	return acc, ""
}

// checkAccel validates an accelerator the user forced.
func checkAccel(accel string) error {
	switch accel {
	case AccelKVM, AccelHVF, AccelWHPX, AccelTCG:
		return nil
	}
	return fmt.Errorf("unknown QEMU accelerator %q (want kvm, hvf, whpx or tcg)", accel)
}
