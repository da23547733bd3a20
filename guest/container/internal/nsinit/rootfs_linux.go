package nsinit

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// maskedPaths and readonlyPaths are Docker's defaults (moby's
// oci.DefaultSpec), lifted by --privileged.
var maskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// devices are the standard nodes of a container's /dev.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3},
	{"zero", 1, 5},
	{"full", 1, 7},
	{"random", 1, 8},
	{"urandom", 1, 9},
	{"tty", 5, 0},
}

var devLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"pts/ptmx", "/dev/ptmx"},
	{"/proc/kcore", "/dev/core"},
}

type ttyPair struct{ master, slave int }

// Layout of a container's directory.
const (
	upperDir  = "upper"
	workDir   = "work"
	rootfsDir = "rootfs"
	emptyDir  = "empty"
)

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// overlayOptions builds the overlay mount options. Layer paths go relative
// to their common parent when the absolute form would not fit the one page
// the kernel accepts; the caller then chdirs there before mounting.
func overlayOptions(dir string, layers []string) (opts, chdir string, err error) {
	if len(layers) == 0 {
		layers = []string{filepath.Join(dir, emptyDir)}
	}
	upper, work := filepath.Join(dir, upperDir), filepath.Join(dir, workDir)
	build := func(rel func(string) string) string {
		var b strings.Builder
		b.WriteString("lowerdir=")
		for i := len(layers) - 1; i >= 0; i-- { // overlay lists the top layer first
			b.WriteString(rel(layers[i]))
			if i > 0 {
				b.WriteByte(':')
			}
		}
		b.WriteString(",upperdir=" + upper + ",workdir=" + work)
		return b.String()
	}
	for _, l := range layers {
		if strings.ContainsAny(l, ",:") {
			return "", "", fmt.Errorf("layer path %q contains ',' or ':'", l)
		}
	}
	opts = build(func(s string) string { return s })
	if len(opts) < unix.Getpagesize()-1 {
		return opts, "", nil
	}
	common := filepath.Dir(layers[0])
	for _, l := range layers[1:] {
		for !strings.HasPrefix(l, common+"/") && common != "/" {
			common = filepath.Dir(common)
		}
	}
	opts = build(func(s string) string { return strings.TrimPrefix(s, common+"/") })
	if len(opts) >= unix.Getpagesize()-1 {
		return "", "", fmt.Errorf("too many image layers (%d) for one overlay mount", len(layers))
	}
	return opts, common, nil
}

// ensureDir makes sure path (inside the new root) is a directory that can
// be a mount point; a symlink there is refused rather than followed.
func ensureDir(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s in the image is not a directory", path)
	}
	return nil
}

// setupRootfs mounts the overlay, pivots into it and mounts the kernel
// filesystems. Everything after the pivot resolves inside the container's
// root, so a hostile image's symlinks cannot point a mount outside it.
func setupRootfs(cfg *Config, tr *Tracer) (*ttyPair, error) {
	for _, d := range []string{upperDir, workDir, rootfsDir} {
		if err := os.Mkdir(filepath.Join(cfg.Dir, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	if len(cfg.Layers) == 0 {
		if err := os.Mkdir(filepath.Join(cfg.Dir, emptyDir), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	opts, chdir, err := overlayOptions(cfg.Dir, cfg.Layers)
	if err != nil {
		return nil, err
	}
	if chdir != "" {
		if err := unix.Chdir(chdir); err != nil {
			return nil, fmt.Errorf("chdir to the layers: %w", err)
		}
	}
	rootfs := filepath.Join(cfg.Dir, rootfsDir)
	tr.Step("mkdirs")
	if err := mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return nil, err
	}
	tr.Step("overlay")
	for _, m := range cfg.Mounts {
		mountOne := bindMount
		if m.Type == MountTmpfs {
			mountOne = tmpfsMount
		}
		if err := mountOne(rootfs, m); err != nil {
			return nil, err
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return nil, fmt.Errorf("chdir to rootfs: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// lazy unmount then takes away the old root and every host mount.
	if err := unix.PivotRoot(".", "."); err != nil {
		return nil, fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return nil, fmt.Errorf("unmount the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return nil, err
	}
	tr.Step("pivot")

	for _, d := range []string{"/proc", "/sys", "/dev"} {
		if err := ensureDir(d); err != nil {
			return nil, fmt.Errorf("mount point: %w", err)
		}
	}
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := mount("proc", "/proc", "proc", nsd, ""); err != nil {
		return nil, err
	}
	tr.Step("proc")
	sysFlags := uintptr(nsd)
	if !cfg.Privileged {
		sysFlags |= unix.MS_RDONLY
	}
	if err := mount("sysfs", "/sys", "sysfs", sysFlags, ""); err != nil {
		return nil, err
	}
	tr.Step("sys")
	if err := mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return nil, err
	}
	for _, d := range devices {
		if err := unix.Mknod("/dev/"+d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return nil, fmt.Errorf("mknod /dev/%s: %w", d.name, err)
		}
	}
	for _, l := range devLinks {
		if err := unix.Symlink(l[0], l[1]); err != nil {
			return nil, fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm", "/dev/mqueue"} {
		if err := unix.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	if err := mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return nil, err
	}
	if err := mount("shm", "/dev/shm", "tmpfs", nsd, "mode=1777,size=65536k"); err != nil {
		return nil, err
	}
	if err := mount("mqueue", "/dev/mqueue", "mqueue", nsd, ""); err != nil {
		return nil, err
	}

	tr.Step("dev")
	var tty *ttyPair
	if cfg.Tty {
		t, err := openTty(cfg.Rows, cfg.Cols)
		if err != nil {
			return nil, err
		}
		tty = t
	}
	if !cfg.Privileged {
		if err := maskPaths(); err != nil {
			return nil, err
		}
	}
	tr.Step("mask")
	return tty, nil
}

// bindMount mounts m.Source on m.Target inside rootfs. The target is
// resolved inside rootfs (the image's symlinks cannot point it outside)
// and created, as a directory or an empty file like its source, when
// missing.
func bindMount(rootfs string, m Mount) error {
	if !filepath.IsAbs(m.Target) {
		return fmt.Errorf("mount target %q is not absolute", m.Target)
	}
	src, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount source: %w", err)
	}
	target, err := securejoin.SecureJoin(rootfs, m.Target)
	if err != nil {
		return fmt.Errorf("mount target %s: %w", m.Target, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("mount target %s: %w", m.Target, err)
	}
	if src.IsDir() {
		if err := ensureDir(target); err != nil {
			return fmt.Errorf("mount target %s: %w", m.Target, err)
		}
	} else if fi, err := os.Lstat(target); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("mount target %s: %w", m.Target, err)
		}
		f.Close()
	} else if err != nil {
		return fmt.Errorf("mount target %s: %w", m.Target, err)
	} else if fi.IsDir() {
		return fmt.Errorf("mount target %s: a directory in the image, the source is a file", m.Target)
	}
	if err := mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if m.ReadOnly {
		if err := mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	return nil
}

// openTty allocates a terminal from the container's own devpts instance, so
// that /dev/pts/N, ttyname and /dev/console inside the container all name
// it, and bind-mounts its slave on /dev/console as runc does.
func openTty(rows, cols uint16) (*ttyPair, error) {
	master, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(master)
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		unix.Close(master)
		return nil, fmt.Errorf("get pty number: %w", err)
	}
	if rows > 0 && cols > 0 {
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
			unix.Close(master)
			return nil, fmt.Errorf("set window size: %w", err)
		}
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	slave, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(master)
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	fd, err := unix.Open("/dev/console", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		unix.Close(fd)
		err = mount(name, "/dev/console", "", unix.MS_BIND, "")
	}
	if err != nil {
		unix.Close(master)
		unix.Close(slave)
		return nil, fmt.Errorf("console: %w", err)
	}
	return &ttyPair{master: master, slave: slave}, nil
}

// maskPaths hides Docker's masked paths (/dev/null over files, an empty
// read-only tmpfs over directories) and makes its read-only paths so.
func maskPaths() error {
	for _, p := range maskedPaths {
		err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		if err == unix.ENOTDIR {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
		}
		if err != nil && err != unix.ENOENT {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}

// MountOverlay mounts a container's root filesystem (the overlay of its
// layers and its upper directory in dir) at target, in the caller's mount
// namespace: for copying files in and out while the container does not
// run. Layer lists too long for absolute paths are refused, since the
// relative form needs a chdir that would move every thread of the caller.
func MountOverlay(dir string, layers []string, target string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range []string{upperDir, workDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if len(layers) == 0 {
		if err := os.Mkdir(filepath.Join(dir, emptyDir), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	opts, chdir, err := overlayOptions(dir, layers)
	if err != nil {
		return err
	}
	if chdir != "" {
		return fmt.Errorf("too many image layers (%d) to mount outside the container", len(layers))
	}
	return mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

// WriteUpperDiff writes what a container changed (the overlay upper
// directory of its root in dir) as an image layer: a tar whose deletions
// are OCI whiteouts (".wh.NAME") and whose replaced directories carry the
// opaque marker (".wh..wh..opq"), as docker commit and builds make them.
func WriteUpperDiff(dir string, w io.Writer) error {
	upper := filepath.Join(dir, upperDir)
	tw := tar.NewWriter(w)
	links := map[uint64]string{} // inode -> first name, for hard links
	err := filepath.WalkDir(upper, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, path)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: filepath.Join(filepath.Dir(rel), ".wh."+filepath.Base(rel)), Mode: 0o644, ModTime: fi.ModTime()})
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[st.Ino] = rel
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			buf := make([]byte, 8)
			if n, err := unix.Lgetxattr(path, "trusted.overlay.opaque", buf); err == nil && string(buf[:n]) == "y" {
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: filepath.Join(rel, ".wh..wh..opq"), Mode: 0o644, ModTime: fi.ModTime()})
			}
			return nil
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if errors.Is(err, os.ErrNotExist) && !exists(upper) {
		err = nil // never started: nothing changed
	}
	if err != nil {
		return fmt.Errorf("container changes: %w", err)
	}
	return tw.Close()
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
