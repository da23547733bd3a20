package share

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
)

// virtiofsDir holds the shares' virtiofs mounts, out of containers' sight
// (they get their own root) and apart from the mounts users see, which
// are the FUSE mounts over them.
const virtiofsDir = "/run/vmbox/virtiofs"

// mountVirtiofs mounts sh's virtiofs device and returns its root.
func mountVirtiofs(sh api.Share) (*os.File, error) {
	dir := filepath.Join(virtiofsDir, sh.Tag)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// A mount left by an earlier host process of this boot.
	unix.Unmount(dir, unix.MNT_DETACH)
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if sh.ReadOnly {
		// virtiofsd has no read-only mode: the guest keeps to it.
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(sh.Tag, dir, "virtiofs", flags, ""); err != nil {
		return nil, fmt.Errorf("mount virtiofs %s on %s: %w", sh.Tag, dir, err)
	}
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return nil, err
	}
	return root, nil
}

// Direct says whether file contents go through virtiofs.
func (m *Mount) Direct() bool { return m.direct != nil }

// unmountDirect detaches the share's virtiofs mount. Its root stays
// open until the FUSE server has stopped (closeDirect): requests still
// being served use it, and a closed descriptor's number could by then
// name another file.
func (m *Mount) unmountDirect() {
	if m.direct == nil {
		return
	}
	unix.Unmount(filepath.Join(virtiofsDir, m.Share.Tag), unix.MNT_DETACH)
}

// closeDirect closes the virtiofs root once nothing can use it.
func (m *Mount) closeDirect() {
	if m.direct != nil {
		m.direct.Close()
	}
}

// errNoDirect says the share has no virtiofs mount.
var errNoDirect = errors.New("no virtiofs mount")

// openDirect opens the file at the SFTP path p through the share's
// virtiofs mount. It follows no symlink, the last name's included, and
// never leaves the mount: the tree the FUSE mount shows has resolved
// every symlink itself, so one here means the host changed the path since.
func (m *Mount) openDirect(p string, flags int) (*os.File, error) {
	if m.direct == nil {
		return nil, errNoDirect
	}
	rel := strings.TrimPrefix(p, "/")
	if rel == "" || strings.ContainsRune(rel, 0) {
		return nil, unix.EISDIR
	}
	fd, err := unix.Openat2(int(m.direct.Fd()), rel, &unix.OpenHow{
		// O_NONBLOCK: a FIFO the host put in the file's place must not
		// block the open.
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_NONBLOCK),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), p)
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		// A FIFO or device would be opened on the host's side by
		// virtiofsd; only regular files' contents are read this way.
		f.Close()
		return nil, unix.EINVAL
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_NONBLOCK); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
