//go:build linux

package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// DataDisk is the prepared data disk.
type DataDisk struct {
	Device     string // e.g. /dev/vda; empty when MountPoint is on tmpfs
	Formatted  bool   // formatted at this boot (it was blank)
	MountPoint string
}

// diskEnv is where disk preparation looks and what it runs; tests point
// it at temporary directories.
type diskEnv struct {
	sysBlock   string // /sys/block
	devDir     string // /dev
	mountPoint string // vmconfig.DataMountPoint
	mke2fs     string // /sbin/mke2fs
	// ensureExt4 makes the kernel able to mount ext4 (loads the module on
	// kernels that do not build it in).
	ensureExt4 func(ctx context.Context) error
	// waitDisk is how long to wait for a required disk to appear.
	waitDisk time.Duration
}

// prepareDataDisk finds the data disk, formats it if it is blank, and
// mounts it on env.mountPoint. Without a disk (and none required) it mounts
// a tmpfs there instead. A disk holding anything but vmbox's file system is
// an error and is left untouched.
func prepareDataDisk(ctx context.Context, cfg vmconfig.DataDisk, env diskEnv, t *Timings) (*DataDisk, error) {
	start := time.Now()
	name, err := findDataDisk(ctx, env.sysBlock, cfg.Serial, cfg.Required, env.waitDisk)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if err := mountTmpfsData(env.mountPoint); err != nil {
			return nil, err
		}
		t.Add("data disk: none, tmpfs", start)
		return &DataDisk{MountPoint: env.mountPoint}, nil
	}
	dev := filepath.Join(env.devDir, name)
	if err := waitPath(ctx, dev); err != nil {
		return nil, fmt.Errorf("data disk: %w", err)
	}
	dd := &DataDisk{Device: dev, MountPoint: env.mountPoint}
	p, err := probeDevice(dev)
	if err != nil {
		return nil, err
	}
	t.Add("data disk probe "+dev, start)
	switch {
	case p.isVmboxData():
	case p.Blank, cfg.Fresh && p.Type == "unknown":
		start = time.Now()
		if err := formatDataDisk(ctx, env.mke2fs, dev, cfg.Fresh); err != nil {
			return nil, err
		}
		dd.Formatted = true
		t.Add("data disk format "+dev, start)
	case p.Type == "ext2" || p.Type == "ext3" || p.Type == "ext4":
		return nil, fmt.Errorf("data disk %s holds an %s file system labelled %q, not %q: refusing to use or format it", dev, p.Type, p.Label, vmconfig.DataLabel)
	default:
		return nil, fmt.Errorf("data disk %s holds %s data, not vmbox's ext4 file system: refusing to use or format it", dev, p.Type)
	}
	if env.ensureExt4 != nil {
		if err := env.ensureExt4(ctx); err != nil {
			return nil, fmt.Errorf("data disk: %w", err)
		}
	}
	start = time.Now()
	if err := mountExt4(dev, env.mountPoint); err != nil {
		return nil, err
	}
	t.Add("data disk mount "+dev, start)
	return dd, nil
}

// findDataDisk returns the kernel name ("vda") of the data disk: the
// virtio disk with the given serial, or the first one. It returns "" when
// there is none and none is required; a required disk is waited for.
func findDataDisk(ctx context.Context, sysBlock, serial string, required bool, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		name, err := scanDisks(sysBlock, serial)
		if err != nil || name != "" {
			return name, err
		}
		if !required {
			return "", nil
		}
		if time.Now().After(deadline) {
			if serial != "" {
				return "", fmt.Errorf("data disk: no virtio disk with serial %q in %s", serial, sysBlock)
			}
			return "", fmt.Errorf("data disk: no virtio disk (vd*) in %s", sysBlock)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("data disk: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func scanDisks(sysBlock, serial string) (string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("data disk: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "vd") {
			names = append(names, e.Name())
		}
	}
	// vda < vdb < ... < vdz < vdaa, as the kernel assigns them.
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) < len(names[j])
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		if serial == "" {
			return n, nil
		}
		b, err := os.ReadFile(filepath.Join(sysBlock, n, "serial"))
		if err == nil && strings.TrimSpace(string(b)) == serial {
			return n, nil
		}
	}
	return "", nil
}

// probeDevice probes a block device (or an image file).
func probeDevice(dev string) (diskProbe, error) {
	f, err := os.Open(dev)
	if err != nil {
		return diskProbe{}, fmt.Errorf("data disk: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return diskProbe{}, fmt.Errorf("data disk %s: size: %w", dev, err)
	}
	p, err := probeDisk(f, size)
	if err != nil {
		return diskProbe{}, fmt.Errorf("data disk %s: %w", dev, err)
	}
	return p, nil
}

// formatDataDisk makes vmbox's ext4 on a blank device. It probes again
// right before running mke2fs; the caller has already, but formatting is
// the one irreversible step and the check is cheap.
func formatDataDisk(ctx context.Context, mke2fs, dev string, fresh bool) error {
	p, err := probeDevice(dev)
	if err != nil {
		return err
	}
	if !p.Blank && !(fresh && p.Type == "unknown") {
		return fmt.Errorf("data disk %s is not blank (%s): refusing to format it", dev, p.Type)
	}
	cmd := exec.CommandContext(ctx, mke2fs, append(mke2fsArgs(fresh), dev)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("format data disk %s: %s: %w", dev, strings.TrimSpace(string(out)), err)
	}
	return nil
}

// dataMountFlags: atime updates are pointless write traffic for image and
// container state.
const dataMountFlags = unix.MS_NOATIME

func mountExt4(dev, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount data disk: %w", err)
	}
	if err := unix.Mount(dev, target, "ext4", dataMountFlags, "errors=remount-ro"); err != nil {
		return fmt.Errorf("mount data disk %s on %s: %w", dev, target, err)
	}
	return nil
}

func mountTmpfsData(target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount tmpfs for data: %w", err)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", dataMountFlags, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", target, err)
	}
	return nil
}

// hasFilesystem reports whether /proc/filesystems lists fstype.
func hasFilesystem(fstype string) bool {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == fstype {
			return true
		}
	}
	return false
}

// waitPath polls until p exists (devtmpfs creates nodes asynchronously).
func waitPath(ctx context.Context, p string) error {
	delay := time.Millisecond
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", p, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}
