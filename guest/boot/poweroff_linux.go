//go:build linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// PowerOff ends the VM: it sends SIGTERM to every other process, gives
// them a short grace (until ctx ends, at most 5 s), SIGKILLs the rest,
// syncs, unmounts everything it can (the data disk above all; a busy mount
// is remounted read-only and detached), and calls reboot(2) with the
// command vmbox.shutdown asks for (power-off by default). It returns only
// on failure. Outside the guest it refuses and does nothing.
func PowerOff(ctx context.Context) error {
	if !inGuest() {
		return fmt.Errorf("power off: %w", errNotGuest)
	}
	grace := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(d))
	}
	cmdline, _ := readKernelCmdline()
	return shutdownSequence(grace, cmdline)
}

// shutdownSequence is PowerOff's body, shared with PID 1.
func shutdownSequence(grace time.Duration, cmdline kernelCmdline) error {
	killAll(grace)
	unix.Sync()
	unmountAll()
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if cmdline[cmdlineShutdown] == "reboot" {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("power off: reboot(2): %w", err)
	}
	return errors.New("power off: reboot(2) returned")
}

// killAll asks every process but PID 1 and the caller to stop, then kills
// what is left after grace. kill(-1) spares PID 1 and the caller by
// definition. PID 1 reaps here too, since its reaper loop is not running.
func killAll(grace time.Duration) {
	_ = unix.Kill(-1, unix.SIGTERM)
	_ = unix.Kill(-1, unix.SIGCONT) // stopped processes cannot act on SIGTERM
	if waitProcessesGone(grace) {
		return
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	waitProcessesGone(2 * time.Second)
}

func waitProcessesGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if os.Getpid() == 1 {
			reapAll()
		}
		if processesLeft() == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepMounted are left alone at shutdown: nothing on them needs flushing
// and the rest of the sequence reads /proc.
var keepMounted = map[string]bool{"/": true, "/proc": true, "/sys": true, "/dev": true}

// unmountAll unmounts in reverse mount order, so children go before their
// parents. A mount that stays busy is remounted read-only (which flushes a
// file system like the data disk's ext4 and makes it clean) and detached.
func unmountAll() {
	infos, err := readMountInfo()
	if err != nil {
		consolef("shutdown: %v", err)
		return
	}
	for i := len(infos) - 1; i >= 0; i-- {
		m := infos[i]
		if keepMounted[m.MountPoint] {
			continue
		}
		if err := unix.Unmount(m.MountPoint, 0); err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			continue
		}
		if err := unix.Mount("", m.MountPoint, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil && m.MountPoint == vmconfig.DataMountPoint {
			consolef("shutdown: remount %s read-only: %v", m.MountPoint, err)
		}
		if err := unix.Unmount(m.MountPoint, unix.MNT_DETACH); err != nil && m.MountPoint == vmconfig.DataMountPoint {
			consolef("shutdown: detach %s: %v", m.MountPoint, err)
		}
	}
}
