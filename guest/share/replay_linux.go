package share

import (
	"context"
	"errors"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
)

// A change made on the host reaches inotify watchers in the VM only if
// the VM's kernel sees it happen: FUSE can invalidate caches but raises
// no inotify events. So the agent makes the same change again through the
// mount, from one thread whose requests the file system answers without
// asking the host (which has already made it): the kernel then raises the
// events a local change raises (IN_CREATE, IN_MODIFY and IN_CLOSE_WRITE,
// IN_DELETE, IN_ATTRIB) on the inodes that containers watch.

// replayOp is the change being replayed: the entry name in the directory
// dir (an SFTP path), and the type a removed entry had.
type replayOp struct {
	op   string
	dir  string
	name string
}

// replayFor returns the change being replayed when ctx is a request from
// the replaying thread, and nil for every other request.
func (m *Mount) replayFor(ctx context.Context) *replayOp {
	tid := m.replayTID.Load()
	if tid == 0 {
		return nil
	}
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid != uint32(tid) {
		return nil
	}
	return m.replaying.Load()
}

// replayLookup answers a lookup of the replaying thread: the entry being
// created does not exist yet and the one being removed still does, as
// the kernel must believe for the change to be one; any other name (a
// directory on the way) is looked up on the host.
func (n *node) replayLookup(ctx context.Context, op *replayOp, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.sftpPath() == op.dir && name == op.name {
		switch op.op {
		case api.ShareCreate:
			// Any other process that looks the name up meanwhile
			// must ask again and find the host's file: a non-zero
			// entry timeout keeps go-fuse from turning this ENOENT
			// into a negative entry the kernel caches, and the
			// kernel then keeps none.
			out.SetEntryTimeout(time.Nanosecond)
			return nil, syscall.ENOENT
		case api.ShareRemove:
			mode := uint32(syscall.S_IFREG | 0o644)
			if ch := n.GetChild(name); ch != nil {
				mode = ch.Mode() | 0o644
			}
			out.Attr.Mode = mode
			ch := n.childInode(ctx, name, mode)
			out.Attr.Ino = ch.StableAttr().Ino
			return ch, 0
		}
	}
	return n.lookupHost(ctx, name, out)
}

// Replay makes the host's changes seen in the VM. It returns when events
// is closed or ctx ends.
func (m *Mount) Replay(ctx context.Context, events <-chan api.ShareEvent) {
	// The thread must stay this goroutine's: requests are told apart by
	// the thread that makes them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m.replayTID.Store(int32(unix.Gettid()))
	defer m.replayTID.Store(0)
	root, err := unix.Open(m.Share.GuestPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.log.Warn("share events will not reach the VM", "share", m.Share.GuestPath, "err", err)
		return
	}
	defer unix.Close(root)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.closed:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if err := m.replay(root, ev); err != nil {
				m.log.Debug("replay a host change", "share", m.Share.GuestPath, "path", ev.Path, "op", ev.Op, "err", err)
			}
		}
	}
}

func (m *Mount) replay(root int, ev api.ShareEvent) error {
	p := path.Clean("/" + ev.Path)
	if p == "/" {
		return nil
	}
	dir, name := path.Split(p)
	dir = path.Clean(dir)
	op := &replayOp{op: ev.Op, dir: dir, name: name}
	m.changes.Add(1)
	m.replaying.Store(op)
	defer m.replaying.Store(nil)
	// The directory is reached without following any symlink: a change
	// never leaves the share, whatever its links say.
	dfd, err := unix.Openat2(root, "."+dir, &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		// Nor into another mount (a share inside this one replays its own).
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	switch ev.Op {
	case api.ShareCreate:
		fi, err := m.client.Lstat(p)
		if err != nil {
			return err // gone again
		}
		st := fi.Sys().(*sftp.FileStat)
		perm := st.Mode & 0o7777
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			err = unix.Mkdirat(dfd, name, perm)
		case syscall.S_IFLNK:
			var target string
			if target, err = m.client.ReadLink(p); err == nil {
				err = unix.Symlinkat(target, dfd, name)
			}
		default:
			var fd int
			if fd, err = unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm); err == nil {
				unix.Close(fd)
			}
		}
		if errors.Is(err, unix.EEXIST) {
			// The VM knew the name already: the host replaced the file
			// (an editor's save by rename); to watchers it is a write.
			op.op = api.ShareWrite
			return m.replayWrite(dfd, p, name)
		}
		return err
	case api.ShareWrite:
		return m.replayWrite(dfd, p, name)
	case api.ShareRemove:
		err := unix.Unlinkat(dfd, name, 0)
		if errors.Is(err, unix.EISDIR) {
			err = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
		}
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	case api.ShareChmod:
		fi, err := m.client.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*sftp.FileStat)
		if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
			return nil
		}
		// chmod follows symlinks: the entry is opened without following
		// one, and changed through that descriptor.
		fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT == unix.S_IFLNK {
			return err
		}
		return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), st.Mode&0o7777, 0)
	}
	return nil
}

// replayWrite opens the file for writing, truncates it to the size it
// has on the host and closes it: IN_OPEN, IN_MODIFY and IN_CLOSE_WRITE,
// as a write raises; then the pages the VM cached are dropped.
func (m *Mount) replayWrite(dfd int, p, name string) error {
	fi, err := m.client.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	// Non-blocking: a FIFO swapped in meanwhile must not hold the replay.
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	err = unix.Ftruncate(fd, fi.Size())
	unix.Close(fd)
	if in := m.inode(p); in != nil {
		in.NotifyContent(0, 0)
	}
	return err
}

// inode is the inode at the SFTP path p if the VM has looked it up.
func (m *Mount) inode(p string) *fs.Inode {
	in := &m.root.Inode
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if in = in.GetChild(part); in == nil {
			return nil
		}
	}
	return in
}
