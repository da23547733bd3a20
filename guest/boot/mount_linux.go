//go:build linux

package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountSpec is one file system the guest mounts at boot.
type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

const (
	nosuidNodev       = unix.MS_NOSUID | unix.MS_NODEV
	nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// earlyMounts are what everything else needs: Init mounts them before it
// starts the agent, and Run again (idempotently) for a direct caller.
var earlyMounts = []mountSpec{
	{"proc", "/proc", "proc", nosuidNodevNoexec, ""},
	{"sysfs", "/sys", "sysfs", nosuidNodevNoexec, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
}

// lateMounts come after earlyMounts, in order (parents before children).
var lateMounts = []mountSpec{
	// newinstance is implied since Linux 4.7; ptmxmode makes pts/ptmx
	// usable by everyone, which /dev/ptmx (devtmpfs) resolves to.
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	{"shm", "/dev/shm", "tmpfs", nosuidNodev, "mode=1777"},
	{"mqueue", "/dev/mqueue", "mqueue", nosuidNodevNoexec, ""},
	{"tmpfs", "/run", "tmpfs", nosuidNodev, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", nosuidNodev, "mode=1777"},
	// nsdelegate makes cgroup namespaces delegation boundaries, so a
	// container cannot move processes or change limits above its own root.
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", nosuidNodevNoexec, "nsdelegate"},
}

// cgroupControllers are enabled for the root cgroup's children, as far as
// the kernel has them.
var cgroupControllers = []string{"cpu", "cpuset", "io", "memory", "pids"}

// devSymlinks are the /dev links udev would make and programs expect.
var devSymlinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"/proc/kcore", "/dev/core"},
}

// mountAll mounts each spec below root ("/" in the guest) unless something
// is already mounted on its target. It reads the calling thread's
// mountinfo, so it is also right inside a thread's private mount namespace.
func mountAll(root string, specs []mountSpec) (mounted []string, err error) {
	infos, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	for _, s := range specs {
		target := filepath.Join(root, s.target)
		if _, ok := isMounted(infos, target); ok {
			continue
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return mounted, fmt.Errorf("mount %s: %w", target, err)
		}
		if err := unix.Mount(s.source, target, s.fstype, s.flags, s.data); err != nil {
			return mounted, fmt.Errorf("mount %s on %s: %w", s.fstype, target, err)
		}
		mounted = append(mounted, target)
	}
	return mounted, nil
}

// readMountInfo reads the calling thread's mount table. Before /proc is
// mounted there is none to read, and nothing but the root is mounted.
func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if errors.Is(err, os.ErrNotExist) {
		if !isProcMounted() {
			return nil, nil
		}
		f, err = os.Open("/proc/self/mountinfo")
	}
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	return parseMountInfo(f)
}

func isProcMounted() bool {
	var st unix.Statfs_t
	return unix.Statfs("/proc", &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// mountEarly mounts /proc, /sys and /dev. /proc goes first and alone so
// that the rest can consult the mount table.
func mountEarly() error {
	if !isProcMounted() {
		if _, err := mountAll("/", earlyMounts[:1]); err != nil {
			return err
		}
	}
	_, err := mountAll("/", earlyMounts[1:])
	return err
}

// mountLate mounts the rest, enables cgroup controllers and adds the /dev
// symlinks.
func mountLate() error {
	if _, err := mountAll("/", lateMounts); err != nil {
		return err
	}
	if err := enableCgroupControllers("/sys/fs/cgroup"); err != nil {
		return err
	}
	for _, l := range devSymlinks {
		if err := os.Symlink(l[0], l[1]); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

// enableCgroupControllers turns on cgroupControllers (those available) in
// dir's cgroup.subtree_control, so the engine's cgroups can use them. The
// root cgroup is exempt from the no-internal-processes rule, so this works
// while the agent itself sits in it.
func enableCgroupControllers(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroup2: %w", err)
	}
	avail := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		avail[c] = true
	}
	var enable []string
	for _, c := range cgroupControllers {
		if avail[c] {
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) == 0 {
		return nil
	}
	p := filepath.Join(dir, "cgroup.subtree_control")
	if err := os.WriteFile(p, []byte(strings.Join(enable, " ")), 0); err != nil {
		return fmt.Errorf("cgroup2: enable %s: %w", strings.Join(enable, " "), err)
	}
	return nil
}
