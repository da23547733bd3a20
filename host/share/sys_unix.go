//go:build linux || darwin

package share

import (
	"os"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"
)

// openNonblock keeps opening a FIFO from blocking the session: the
// request server runs every open in the one goroutine that serves all
// requests but reads and writes.
const openNonblock = syscall.O_NONBLOCK

// stRdonly is ST_RDONLY of statvfs, MNT_RDONLY of macOS's statfs.
const stRdonly = 1

// posixErrno is err: a Unix error is its errno already.
func posixErrno(err error) error { return err }

// statVFS describes the file system of root's directory.
func statVFS(root *os.Root) (*sftp.StatVFS, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	c, err := d.SyscallConn()
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if cerr := c.Control(func(fd uintptr) { err = unix.Fstatfs(int(fd), &st) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, &os.PathError{Op: "statfs", Path: root.Name(), Err: err}
	}
	// Linux's fragment size and name length, which macOS lacks, are the
	// block size and 255 on the file systems a share is likely on.
	return &sftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  uint64(st.Bsize),
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Flag:    uint64(st.Flags) & stRdonly,
		Namemax: 255,
	}, nil
}
