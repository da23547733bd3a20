//go:build linux

package boot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// bindRootDir is where PID 1 bind-mounts the initramfs to make it its root.
const bindRootDir = "/.vmbox-root"

// leaveRootfs makes PID 1's root a bind mount of the initramfs rather than
// the initramfs ("rootfs") mount itself. pivot_root(2) refuses to move a
// root that is the rootfs, since that mount has no parent; containers need
// pivot_root (chroot alone is escapable with CAP_SYS_CHROOT, which Docker's
// default set grants). A bind mount shares the same files, so unlike
// switch_root nothing is copied. Processes inherit the new root.
func leaveRootfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return nil // booted from a real root file system
	}
	if err := os.Mkdir(bindRootDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("leave rootfs: %w", err)
	}
	if err := unix.Mount("/", bindRootDir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("leave rootfs: bind /: %w", err)
	}
	if err := unix.Chdir(bindRootDir); err != nil {
		return fmt.Errorf("leave rootfs: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("leave rootfs: chroot: %w", err)
	}
	return unix.Chdir("/")
}
