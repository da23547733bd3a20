//go:build !linux && !darwin

package qemu

import "errors"

// accelProblem has nothing to probe here: WHPX is requested with a TCG
// fallback (accelArgs) and other OSes get TCG.
func accelProblem(string) error {
	return errors.New("no hardware accelerator is probed on this OS")
}
