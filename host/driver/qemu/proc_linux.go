package qemu

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startProcess starts cmd in its own process group (a Ctrl-C meant for the
// terminal's foreground job does not reach QEMU) with SIGKILL as its parent
// death signal, so that QEMU dies with the process that owns it, and calls
// exited with cmd.Wait's result once it has exited.
//
// The kernel ties the parent death signal to the thread that forked, not
// to the process: if that thread ended, QEMU would be killed. The goroutine
// that starts QEMU therefore stays locked to its thread and waits for QEMU
// there, which keeps the thread alive exactly as long as QEMU.
func startProcess(cmd *exec.Cmd, exited func(error)) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}
