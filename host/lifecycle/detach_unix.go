//go:build !windows

package lifecycle

import (
	"os/exec"
	"syscall"
)

// detach makes cmd outlive this CLI and its terminal session.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
