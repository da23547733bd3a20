//go:build unix && !linux

package qemu

import (
	"os/exec"
	"syscall"
)

// startProcess starts cmd in its own process group (a Ctrl-C meant for the
// terminal's foreground job does not reach QEMU) and calls exited with
// cmd.Wait's result once it has exited.
//
// macOS and the BSDs have no parent death signal, so QEMU outlives an owner
// that is killed without a chance to clean up. The owner (the per-instance
// host process) kills QEMU on every orderly exit, and QEMU's lock on the
// data disk keeps a second VM from using the disk while an orphan lives.
func startProcess(cmd *exec.Cmd, exited func(error)) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { exited(cmd.Wait()) }()
	return nil
}
