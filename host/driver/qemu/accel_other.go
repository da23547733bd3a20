//go:build !linux && !darwin

package qemu

// accelUsable has nothing to probe here: WHPX is requested with a TCG
// fallback (accelArgs) and other OSes get TCG.
func accelUsable(string) bool { return false }
