package qemu

import "os"

// accelUsable reports whether KVM can be used: /dev/kvm exists and this
// user may open it read-write (membership of the kvm group, usually).
func accelUsable(accel string) bool {
	if accel != AccelKVM {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
