package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/pkg/sftp"

	"github.com/vmbox/vmbox/guest/api"
)

// cacheTimeout is how long the kernel trusts a name or attributes it got
// from the host: changes the host makes are replayed at once, so this
// only bounds how stale an unreplayed change (one the host's watcher
// missed) can look.
const cacheTimeout = time.Second

// Mount is one host folder mounted in the VM.
type Mount struct {
	Share  api.Share
	client *sftp.Client
	// direct is the root of the share's virtiofs mount (Share.Tag), or
	// nil: file contents are read and written there when it is set.
	direct *os.File
	server *fuse.Server
	root   *node
	log    *slog.Logger

	// replayTID is the thread that replays host changes through the
	// mount: requests from it are answered without asking the host,
	// which has already made the change (see replay.go).
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	replayTID atomic.Int32
	replaying atomic.Pointer[replayOp]
	// changes counts the changes made through the mount and replayed
	// from the host: a directory listing's attributes serve lookups only
	// while it is unchanged.
	changes atomic.Uint64
}

// New mounts sh at sh.GuestPath, every operation going as SFTP over
// conn. The mount lasts until Close or until conn fails.
func New(conn io.ReadWriteCloser, sh api.Share, log *slog.Logger) (*Mount, error) {
	client, err := sftp.NewClientPipe(conn, conn,
		sftp.UseConcurrentReads(true), sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(16))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("share %s: SFTP: %w", sh.GuestPath, err)
	}
	m := &Mount{Share: sh, client: client, log: log, closed: make(chan struct{})}
	m.root = &node{m: m}
	if err := os.MkdirAll(sh.GuestPath, 0o755); err != nil {
		client.Close()
		return nil, fmt.Errorf("share %s: %w", sh.GuestPath, err)
	}
	if sh.Tag != "" {
		if m.direct, err = mountVirtiofs(sh); err != nil {
			// The channel alone serves the folder, only slower.
			log.Warn("host folder's virtiofs device not used", "path", sh.GuestPath, "err", err)
		}
	}
	timeout := cacheTimeout
	opts := &fs.Options{
		EntryTimeout: &timeout, AttrTimeout: &timeout, NegativeTimeout: &timeout,
		MountOptions: fuse.MountOptions{
			// Containers' processes run as any user.
			AllowOther: true,
			// No default_permissions: the host decides, as its user.
			FsName:            sh.HostPath,
			Name:              "vmbox",
			DirectMount:       true,
			DirectMountStrict: true,
			MaxWrite:          1 << 20,
			MaxReadAhead:      1 << 20,
			DisableXAttrs:     true,
		},
	}
	if sh.ReadOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	m.server, err = fs.Mount(sh.GuestPath, m.root, opts)
	if err != nil {
		client.Close()
		m.unmountDirect()
		m.closeDirect()
		return nil, fmt.Errorf("share %s: mount: %w", sh.GuestPath, err)
	}
	go func() {
		m.server.Wait()
		m.closeDirect()
	}()
	go func() {
		// The host went away (its process stopped, or the channel broke):
		// a mount that answers EIO for ever would only confuse.
		client.Wait()
		m.Close()
	}()
	return m, nil
}

// Close unmounts the share (lazily, so that a container still using it
// does not keep it) and ends its SFTP session.
func (m *Mount) Close() error {
	var err error
	m.closeOnce.Do(func() {
		// The replay holds the mount's root open: it ends first, so that
		// the detached mount is released.
		close(m.closed)
		err = syscall.Unmount(m.Share.GuestPath, syscall.MNT_DETACH)
		if errors.Is(err, syscall.EINVAL) {
			err = nil // already unmounted
		}
		m.client.Close()
		m.unmountDirect()
	})
	return err
}

// Wait returns when the mount's file system server has stopped.
func (m *Mount) Wait() { m.server.Wait() }

// node is a file, directory or symlink of the share; where it is comes
// from its place in the inode tree, which follows renames.
type node struct {
	fs.Inode
	m *Mount

	// listing is the directory's last listing, whose attributes answer
	// the lookups that follow it (ls -l, git status, a watcher's scan)
	// without a round trip to the host each.
	mu      sync.Mutex
	listing map[string]os.FileInfo
	listed  time.Time
	listGen uint64
}

// fromListing returns name's attributes from a fresh listing of n.
func (n *node) fromListing(name string) (os.FileInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listing == nil || time.Since(n.listed) > cacheTimeout || n.listGen != n.m.changes.Load() {
		n.listing = nil
		return nil, false
	}
	fi, ok := n.listing[name]
	return fi, ok
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

// sftpPath is n's path in the SFTP session. A node the tree has let go
// of (its file unlinked or renamed over while open) has no path: it gets
// one no host file can have, so that an operation on it fails rather
// than landing on the share's root.
func (n *node) sftpPath() string {
	p := n.Path(nil)
	if p == "" && &n.m.root.Inode != n.EmbeddedInode() {
		return orphanPath
	}
	return "/" + p
}

// orphanPath names no file: the host refuses a path with a NUL byte.
const orphanPath = "/.vmbox-orphan\x00"

func (n *node) child(name string) string { return path.Join(n.sftpPath(), name) }

// errno turns an SFTP failure into the errno the host's server named.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		if e, ok := api.ShareErrno(statusMessage(se)); ok {
			return e
		}
		switch se.FxCode() {
		case sftp.ErrSSHFxNoSuchFile:
			return syscall.ENOENT
		case sftp.ErrSSHFxPermissionDenied:
			return syscall.EACCES
		case sftp.ErrSSHFxOpUnsupported:
			return syscall.ENOSYS
		}
		return syscall.EIO
	}
	if errors.Is(err, os.ErrNotExist) {
		return syscall.ENOENT
	}
	if errors.Is(err, os.ErrPermission) {
		return syscall.EACCES
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO // the session is gone
}

// statusMessage is the message the server put in a status: pkg/sftp
// shows it only quoted inside its own text, `sftp: "MSG" (CODE)`.
func statusMessage(se *sftp.StatusError) string {
	s := strings.TrimPrefix(se.Error(), "sftp: ")
	if i := strings.LastIndex(s, " ("); i > 0 {
		if m, err := strconv.Unquote(s[:i]); err == nil {
			return m
		}
	}
	return s
}

// fillAttr describes fi as the VM sees it: every file belongs to root,
// which is what containers run as; the host's user owns it on the host.
func fillAttr(fi os.FileInfo, out *fuse.Attr) {
	st, ok := fi.Sys().(*sftp.FileStat)
	if !ok {
		return
	}
	out.Mode = st.Mode
	out.Size = st.Size
	out.Blocks = (st.Size + 511) / 512
	out.Blksize = 1 << 16
	out.Atime, out.Mtime, out.Ctime = uint64(st.Atime), uint64(st.Mtime), uint64(st.Mtime)
	out.Nlink = 1
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		out.Nlink = 2
	}
}

// childInode returns the inode for name: the one already in the tree when
// its type is unchanged, so that the kernel keeps its inode (and the
// inotify watches on it) across lookups.
func (n *node) childInode(ctx context.Context, name string, mode uint32) *fs.Inode {
	if ch := n.GetChild(name); ch != nil && ch.Mode()&syscall.S_IFMT == mode&syscall.S_IFMT {
		return ch
	}
	return n.NewInode(ctx, &node{m: n.m}, fs.StableAttr{Mode: mode & syscall.S_IFMT})
}

func (n *node) entry(ctx context.Context, name string, fi os.FileInfo, out *fuse.EntryOut) *fs.Inode {
	fillAttr(fi, &out.Attr)
	ch := n.childInode(ctx, name, out.Attr.Mode)
	out.Attr.Ino = ch.StableAttr().Ino
	return ch
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if op := n.m.replayFor(ctx); op != nil {
		return n.replayLookup(ctx, op, name, out)
	}
	// A directory is looked up on the host even when listed: the host
	// watches the directories the VM looks up, for the changes it replays.
	if fi, ok := n.fromListing(name); ok && !fi.IsDir() {
		return n.entry(ctx, name, fi, out), 0
	}
	return n.lookupHost(ctx, name, out)
}

// lookupHost looks name up on the host.
func (n *node) lookupHost(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	fi, err := n.m.client.Lstat(n.child(name))
	if err != nil {
		return nil, errno(err)
	}
	return n.entry(ctx, name, fi, out), 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fi, err := n.m.client.Lstat(n.sftpPath())
	if err != nil {
		return errno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p := n.sftpPath()
	n.m.changes.Add(1)
	if n.m.replayFor(ctx) == nil {
		if n.m.Share.ReadOnly {
			return syscall.EROFS
		}
		if mode, ok := in.GetMode(); ok {
			if err := n.m.client.Chmod(p, os.FileMode(mode&0o7777)); err != nil {
				return errno(err)
			}
		}
		if size, ok := in.GetSize(); ok {
			var err error
			if fh, isOpen := f.(*handle); isOpen {
				err = fh.f.Truncate(int64(size))
			} else {
				err = n.m.client.Truncate(p, int64(size))
			}
			if err != nil {
				return errno(err)
			}
		}
		atime, aok := in.GetATime()
		mtime, mok := in.GetMTime()
		if aok || mok {
			if !aok || !mok {
				fi, err := n.m.client.Lstat(p)
				if err != nil {
					return errno(err)
				}
				st := fi.Sys().(*sftp.FileStat)
				if !aok {
					atime = time.Unix(int64(st.Atime), 0)
				}
				if !mok {
					mtime = time.Unix(int64(st.Mtime), 0)
				}
			}
			if err := n.m.client.Chtimes(p, atime, mtime); err != nil {
				return errno(err)
			}
		}
		// uid and gid: accepted and kept by nobody. The host's user owns
		// every file of the share; failing a container's chown with EPERM
		// would break its setup for nothing.
	}
	fi, err := n.m.client.Lstat(p)
	if err != nil {
		return errno(err)
	}
	fillAttr(fi, &out.Attr)
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	gen := n.m.changes.Load()
	fis, err := n.m.client.ReadDir(n.sftpPath())
	if err != nil {
		return nil, errno(err)
	}
	listing := make(map[string]os.FileInfo, len(fis))
	for _, fi := range fis {
		listing[fi.Name()] = fi
	}
	n.mu.Lock()
	n.listing, n.listed, n.listGen = listing, time.Now(), gen
	n.mu.Unlock()
	// The kernel adds no "." and ".." for FUSE; ls -a and some tools
	// expect them.
	ents := make([]fuse.DirEntry, 0, len(fis)+2)
	ents = append(ents, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR})
	for _, fi := range fis {
		var mode uint32
		if st, ok := fi.Sys().(*sftp.FileStat); ok {
			mode = st.Mode
		}
		ents = append(ents, fuse.DirEntry{Name: fi.Name(), Mode: mode})
	}
	return fs.NewListDirStream(ents), 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.m.replayFor(ctx) != nil {
		return &handle{replay: true}, 0, 0
	}
	if n.m.Share.ReadOnly && int(flags)&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	p := n.sftpPath()
	if int(flags)&(syscall.O_ACCMODE|syscall.O_TRUNC) == syscall.O_RDONLY {
		// Reading through virtiofs needs nothing of the host process.
		if d, err := n.m.openDirect(p, syscall.O_RDONLY); err == nil {
			return &handle{d: d, changes: &n.m.changes}, 0, 0
		}
	}
	f, err := n.m.client.OpenFile(p, openFlags(flags))
	if err != nil {
		return nil, 0, errno(err)
	}
	// No FOPEN_KEEP_CACHE: each open reads what the host has now.
	return n.m.newHandle(f, p, flags), 0, 0
}

// newHandle is the handle of f, the SFTP file at p opened with flags,
// with the same file opened through virtiofs when the share has it. The
// SFTP file stays open: it tells the host that the guest is writing.
func (m *Mount) newHandle(f *sftp.File, p string, flags uint32) *handle {
	h := &handle{f: f, changes: &m.changes}
	if d, err := m.openDirect(p, int(flags)&syscall.O_ACCMODE); err == nil {
		h.d = d
	}
	return h
}

// openFlags keeps the flags of an open that SFTP carries. O_APPEND stays
// in the VM: the kernel gives each write its offset, and the host,
// appending, would place the concurrent pieces of one large write in
// whatever order they arrive.
func openFlags(flags uint32) int {
	return int(flags) & (syscall.O_ACCMODE | syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.m.changes.Add(1)
	p := n.child(name)
	if n.m.replayFor(ctx) != nil {
		fi, err := n.m.client.Lstat(p)
		if err != nil {
			return nil, nil, 0, errno(err)
		}
		return n.entry(ctx, name, fi, out), &handle{replay: true}, 0, 0
	}
	if n.m.Share.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	f, err := n.m.client.OpenFile(p, openFlags(flags)|os.O_CREATE)
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	if perm := mode & 0o7777; perm != 0o644 {
		if err := n.m.client.Chmod(p, os.FileMode(perm)); err != nil {
			f.Close()
			return nil, nil, 0, errno(err)
		}
	}
	fi, err := n.m.client.Lstat(p)
	if err != nil {
		f.Close()
		return nil, nil, 0, errno(err)
	}
	return n.entry(ctx, name, fi, out), n.m.newHandle(f, p, flags), 0, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.m.changes.Add(1)
	p := n.child(name)
	if n.m.replayFor(ctx) == nil {
		if n.m.Share.ReadOnly {
			return nil, syscall.EROFS
		}
		if err := n.m.client.Mkdir(p); err != nil {
			return nil, errno(err)
		}
		if perm := mode & 0o7777; perm != 0o755 {
			n.m.client.Chmod(p, os.FileMode(perm))
		}
	}
	fi, err := n.m.client.Lstat(p)
	if err != nil {
		return nil, errno(err)
	}
	return n.entry(ctx, name, fi, out), 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.m.changes.Add(1)
	if n.m.replayFor(ctx) != nil {
		return 0
	}
	if n.m.Share.ReadOnly {
		return syscall.EROFS
	}
	return errno(n.m.client.Remove(n.child(name)))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.m.changes.Add(1)
	if n.m.replayFor(ctx) != nil {
		return 0
	}
	if n.m.Share.ReadOnly {
		return syscall.EROFS
	}
	return errno(n.m.client.RemoveDirectory(n.child(name)))
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	n.m.changes.Add(1)
	if n.m.Share.ReadOnly {
		return syscall.EROFS
	}
	if flags != 0 {
		return syscall.EINVAL // RENAME_NOREPLACE and RENAME_EXCHANGE have no SFTP request
	}
	to := path.Join("/"+newParent.EmbeddedInode().Path(nil), newName)
	return errno(n.m.client.PosixRename(n.child(name), to))
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.m.changes.Add(1)
	p := n.child(name)
	if n.m.replayFor(ctx) == nil {
		if n.m.Share.ReadOnly {
			return nil, syscall.EROFS
		}
		if err := n.m.client.Symlink(target, p); err != nil {
			return nil, errno(err)
		}
	}
	fi, err := n.m.client.Lstat(p)
	if err != nil {
		return nil, errno(err)
	}
	return n.entry(ctx, name, fi, out), 0
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.m.client.ReadLink(n.sftpPath())
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.m.changes.Add(1)
	if n.m.Share.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	if err := n.m.client.Link("/"+target.EmbeddedInode().Path(nil), p); err != nil {
		return nil, errno(err)
	}
	fi, err := n.m.client.Lstat(p)
	if err != nil {
		return nil, errno(err)
	}
	return n.entry(ctx, name, fi, out), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.m.client.StatVFS(n.sftpPath())
	if err != nil {
		// A host without statvfs: an empty answer rather than a failing df.
		out.Bsize, out.NameLen = 4096, 255
		return 0
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	out.NameLen = uint32(st.Namemax)
	return 0
}

// handle is an open file of the share: its SFTP file, its virtiofs file,
// or both (the contents then go through virtiofs). A replayed open has
// neither.
type handle struct {
	f       *sftp.File
	d       *os.File
	replay  bool
	changes *atomic.Uint64 // the mount's
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
	_ fs.FileFsyncer  = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.replay {
		return fuse.ReadResultData(nil), 0
	}
	var n int
	var err error
	if h.d != nil {
		n, err = h.d.ReadAt(dest, off)
	} else {
		n, err = h.f.ReadAt(dest, off)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.replay {
		return uint32(len(data)), 0
	}
	h.changes.Add(1)
	var n int
	var err error
	if h.d != nil {
		n, err = h.d.WriteAt(data, off)
	} else {
		n, err = h.f.WriteAt(data, off)
	}
	if err != nil {
		return uint32(n), errno(err)
	}
	return uint32(n), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.replay {
		return 0
	}
	var err error
	if h.d != nil {
		err = h.d.Close()
	}
	// After the virtiofs file: the host counts the file as the guest's
	// own writing until the SFTP file closes.
	if h.f != nil {
		if cerr := h.f.Close(); err == nil {
			err = cerr
		}
	}
	return errno(err)
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.replay {
		return 0
	}
	if h.d != nil {
		// virtiofs carries fsync to the host's disk.
		return errno(h.d.Sync())
	}
	// SFTP v3 has no fsync; pkg/sftp sends OpenSSH's fsync extension,
	// which a host server without it refuses: then the data is at least
	// with the host's kernel.
	if err := h.f.Sync(); err != nil && errno(err) != syscall.ENOSYS {
		return errno(err)
	}
	return 0
}
