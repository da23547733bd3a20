//go:build linux

package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Safe extraction of hostile layer tarballs.
//
// Layers are unpacked as root, so a crafted tar must never create, change or
// follow anything outside the layer directory. The rules:
//
//   - Entry names are cleaned; leading "/" is dropped (absolute names are
//     relative to the layer root, as Docker treats them) and a name that
//     climbs out with ".." fails the layer.
//   - The parent directory of every entry is resolved with
//     filepath-securejoin's pathrs-lite (openat2 RESOLVE_IN_ROOT, or an
//     equivalent emulation): symlinks met on the way, absolute or relative,
//     chained or not, resolve as if the layer directory were "/", the way
//     Docker's chrooted extraction sees them. The result is a directory
//     handle inside the layer.
//   - The final component is only ever handled with *at(2) calls relative to
//     that handle and never followed: whatever exists there is unlinked
//     first, regular files are created with O_CREAT|O_EXCL|O_NOFOLLOW,
//     ownership and times use AT_SYMLINK_NOFOLLOW, modes and xattrs are set
//     through the file descriptor we created.
//   - Hard-link targets are cleaned and resolved in the same way, and
//     linkat(2) is called without AT_SYMLINK_FOLLOW, so a link can only
//     point at an inode already inside the layer.
//   - Device nodes and FIFOs are created with mknodat(2) inside the layer
//     (as Docker does when running as root); whether a container may open a
//     device is the runtime's device-cgroup policy, not the image's. Without
//     CAP_MKNOD they are skipped.
//   - Setuid/setgid/sticky bits are kept; chmod happens after chown because
//     chown clears them.
//   - xattrs: user.*, security.capability and POSIX ACLs are kept; trusted.*
//     (which includes overlayfs' own trusted.overlay.*) and other security.*
//     attributes from the archive are dropped, so an image cannot forge
//     overlayfs metadata such as redirects.
//
// Whiteouts become overlayfs' native form because each layer is its own
// lowerdir: ".wh.NAME" becomes a 0/0 character device NAME, and
// ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory. As the OCI
// spec says, a whiteout only hides lower layers: when the same layer also
// has NAME, the real entry wins; a directory that replaces a whiteout in the
// same layer is made opaque, which is what deleting and recreating it means.

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
	maxParentCache = 64
)

var errEscape = errors.New("path escapes the layer root")

// extractTar unpacks the uncompressed tar stream r into dir, an existing
// empty directory. It reads r up to the tar end-of-archive marker.
func extractTar(dir string, r io.Reader) error {
	root, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open layer directory: %w", err)
	}
	x := &extractor{root: root, parents: map[string]*os.File{}, euid: os.Geteuid(), egid: os.Getegid(), buf: make([]byte, 128<<10)}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return &entryError{name: hdr.Name, err: err}
		}
	}
	return x.finish()
}

// entryError reports the entry a layer failed on. Hostile names can be
// huge, and the errors of path functions repeat them, so the message is
// kept short.
type entryError struct {
	name string
	err  error
}

func (e *entryError) Error() string {
	return fmt.Sprintf("layer entry %q: %s", truncate(e.name, 120), truncate(oneLine(e.err.Error()), 300))
}

func (e *entryError) Unwrap() error { return e.err }

type extractor struct {
	root       *os.File
	euid, egid int
	buf        []byte
	// parents caches directory handles by cleaned path. An entry that
	// removes a directory or symlink marks it stale, since that can change
	// what a path resolves to; it is flushed before the next entry (never
	// during one: the entry is still using its parent's handle).
	parents map[string]*os.File
	stale   bool
	dirs    []dirTimes
}

type dirTimes struct {
	name         string
	atime, mtime time.Time
}

func (x *extractor) close() {
	x.flushParents()
	x.root.Close()
}

func (x *extractor) flushParents() {
	for k, f := range x.parents {
		f.Close()
		delete(x.parents, k)
	}
}

// cleanName maps a tar entry name to a path relative to the layer root,
// "." for the root itself.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains NUL")
	}
	p := path.Clean(name)
	if strings.HasPrefix(p, "/") {
		// Clean has already resolved any ".." against "/".
		p = strings.TrimLeft(p, "/")
		if p == "" {
			p = "."
		}
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errEscape
	}
	return p, nil
}

// parent returns a handle on directory p inside the layer, creating missing
// directories (0755, as Docker does for implied parents).
func (x *extractor) parent(p string) (int, error) {
	if p == "." {
		return int(x.root.Fd()), nil
	}
	if f, ok := x.parents[p]; ok {
		return int(f.Fd()), nil
	}
	f, err := pathrs.MkdirAllHandle(x.root, p, 0o755)
	if err != nil {
		return -1, fmt.Errorf("parent directory: %w", err)
	}
	if len(x.parents) >= maxParentCache {
		x.flushParents()
	}
	x.parents[p] = f
	return int(f.Fd()), nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if x.stale {
		x.flushParents()
		x.stale = false
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		// Consumed by archive/tar; nothing to create.
		return nil
	}
	p, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if p == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer root can only be a directory")
		}
		fd := int(x.root.Fd())
		if err := x.meta(fd, hdr); err != nil {
			return err
		}
		x.dirs = append(x.dirs, dirTimes{".", hdr.AccessTime, hdr.ModTime})
		return nil
	}
	dir, base := path.Dir(p), path.Base(p)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(dir, base)
	}
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return x.file(pfd, base, hdr, r)
	case tar.TypeDir:
		return x.dir(pfd, p, base, hdr)
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return errors.New("symlink with an empty target")
		}
		err := x.create(pfd, base, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
		if err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if err := x.chown(pfd, base, hdr); err != nil {
			return err
		}
		return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
	case tar.TypeLink:
		return x.link(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.node(pfd, base, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

func isWhiteoutDev(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// create runs mk, which makes base in pfd and fails with EEXIST if the name
// is taken. Whatever has the name is then removed (recursively for a
// directory, never following a symlink) and mk tried once more: a later
// entry replaces an earlier one, as tar does. Trying first saves a stat per
// entry; most names are new.
func (x *extractor) create(pfd int, base string, mk func() error) error {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if err := x.remove(pfd, base, &st); err != nil {
		return err
	}
	return mk()
}

// dir creates or updates a directory. An existing directory is kept (tar
// entries for a directory only set its metadata); anything else is
// replaced, and a directory replacing a whiteout is made opaque.
func (x *extractor) dir(pfd int, p, base string, hdr *tar.Header) error {
	opaque := false
	if err := unix.Mkdirat(pfd, base, 0o700); errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			opaque = isWhiteoutDev(&st)
			if err := x.remove(pfd, base, &st); err != nil {
				return err
			}
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
	} else if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if opaque {
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark opaque: %w", err)
		}
	}
	if err := x.meta(fd, hdr); err != nil {
		return err
	}
	x.dirs = append(x.dirs, dirTimes{p, hdr.AccessTime, hdr.ModTime})
	return nil
}

// remove deletes what is at base in pfd (recursively for a directory).
func (x *extractor) remove(pfd int, base string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		x.stale = true
		if err := removeAllAt(pfd, base, 0); err != nil {
			return fmt.Errorf("replace directory: %w", err)
		}
	case unix.S_IFLNK:
		x.stale = true
		fallthrough
	default:
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
	}
	return nil
}

// removeAllAt removes name under dirfd without following symlinks.
func removeAllAt(dirfd int, name string, depth int) error {
	if depth > 4096 {
		return errors.New("directory tree too deep to remove")
	}
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	for range 2 {
		names, err := d.Readdirnames(-1)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := removeAllAt(fd, n, depth+1); err != nil {
				return err
			}
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
		if _, err := d.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

func (x *extractor) file(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	var fd int
	err := x.create(pfd, base, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	// Copy through a plain writer so os.File's ReadFrom fast paths, which
	// gain nothing on a tar stream, are not tried per file.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, r, x.buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := x.meta(fd, hdr); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// meta applies ownership, mode and xattrs to an open file or directory.
func (x *extractor) meta(fd int, hdr *tar.Header) error {
	if hdr.Uid != x.euid || hdr.Gid != x.egid {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil && (x.euid == 0 || !errors.Is(err, unix.EPERM)) {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, tarMode(hdr.Mode)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !xattrAllowed(attr) {
			continue
		}
		if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil {
			// Best effort, as Docker does: not every filesystem takes every
			// xattr, and a missing one does not endanger anything.
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) || errors.Is(err, unix.E2BIG) {
				continue
			}
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	return nil
}

func xattrAllowed(name string) bool {
	switch {
	case strings.HasPrefix(name, "user."):
		return true
	case name == "security.capability", name == "system.posix_acl_access", name == "system.posix_acl_default":
		return true
	}
	return false
}

// tarMode keeps the permission, setuid, setgid and sticky bits of a tar mode.
func tarMode(m int64) uint32 {
	return uint32(m) & 0o7777
}

func (x *extractor) chown(pfd int, base string, hdr *tar.Header) error {
	if hdr.Uid == x.euid && hdr.Gid == x.egid {
		return nil
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && (x.euid == 0 || !errors.Is(err, unix.EPERM)) {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

func (x *extractor) link(pfd int, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", truncate(hdr.Linkname, 120), err)
	}
	if target == "." {
		return errors.New("hard link to the layer root")
	}
	tdir, tbase := path.Dir(target), path.Base(target)
	tfd := int(x.root.Fd())
	if tdir != "." {
		// The target must already exist: resolve, never create.
		f, err := pathrs.OpenatInRoot(x.root, tdir)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", truncate(hdr.Linkname, 120), err)
		}
		defer f.Close()
		tfd = int(f.Fd())
	}
	// No AT_SYMLINK_FOLLOW: if the target is a symlink, the link is to the
	// symlink itself, never to where it points.
	if err := x.create(pfd, base, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
		return fmt.Errorf("hard link to %q: %w", truncate(hdr.Linkname, 120), err)
	}
	return nil
}

func (x *extractor) node(pfd int, base string, hdr *tar.Header) error {
	var kind uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	default:
		kind = unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := x.create(pfd, base, func() error { return unix.Mknodat(pfd, base, kind|0o600, int(dev)) }); err != nil {
		if x.euid != 0 && errors.Is(err, unix.EPERM) {
			return nil
		}
		return fmt.Errorf("mknod: %w", err)
	}
	if err := x.chown(pfd, base, hdr); err != nil {
		return err
	}
	// mknodat applied the umask. fchmodat cannot refuse to follow a
	// symlink, but the name was created by mknodat just now and nothing else
	// writes the layer while it is unpacked.
	if err := unix.Fchmodat(pfd, base, tarMode(hdr.Mode), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// whiteout converts an AUFS-style whiteout entry into overlayfs' form.
func (x *extractor) whiteout(dir, base string) error {
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	if base == opaqueMarker {
		fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark opaque: %w", err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs) means nothing here.
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("invalid whiteout")
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		// Same-layer content wins over the whiteout, and a whiteout that is
		// already there needs nothing.
		return nil
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR|0o600, 0); err != nil {
		return fmt.Errorf("create whiteout: %w", err)
	}
	return nil
}

// finish sets directory times last, since creating entries changed them.
func (x *extractor) finish() error {
	x.flushParents()
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if d.name == "." {
			if err := setTimes(int(x.root.Fd()), ".", d.atime, d.mtime); err != nil {
				return err
			}
			continue
		}
		dir, base := path.Dir(d.name), path.Base(d.name)
		pfd := int(x.root.Fd())
		var f *os.File
		if dir != "." {
			var err error
			f, err = pathrs.OpenatInRoot(x.root, dir)
			if err != nil {
				// A later entry replaced the directory's parent; its time
				// no longer matters.
				continue
			}
			pfd = int(f.Fd())
		}
		err := setTimes(pfd, base, d.atime, d.mtime)
		if f != nil {
			f.Close()
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// setTimes sets a name's times without following a symlink. Times before
// the epoch are clamped to it, as Docker does.
func setTimes(dirfd int, name string, atime, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.Unix() < 0 {
		return unix.Timespec{}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
