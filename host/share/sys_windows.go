package share

import (
	"errors"
	"os"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/sys/windows"
)

const openNonblock = 0

// stRdonly is ST_RDONLY of statvfs.
const stRdonly = 1

// posixErrno gives a Windows error the POSIX errno that the agent is to
// return for it.
func posixErrno(err error) error {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return err
	}
	var p syscall.Errno
	switch e {
	case windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND, windows.ERROR_INVALID_DRIVE:
		p = syscall.ENOENT
	case windows.ERROR_FILE_EXISTS, windows.ERROR_ALREADY_EXISTS:
		p = syscall.EEXIST
	case windows.ERROR_DIR_NOT_EMPTY:
		p = syscall.ENOTEMPTY
	case windows.ERROR_DIRECTORY:
		p = syscall.ENOTDIR
	case windows.ERROR_ACCESS_DENIED:
		p = syscall.EACCES
	case windows.ERROR_PRIVILEGE_NOT_HELD:
		p = syscall.EPERM
	case windows.ERROR_WRITE_PROTECT:
		p = syscall.EROFS
	case windows.ERROR_DISK_FULL, windows.ERROR_HANDLE_DISK_FULL:
		p = syscall.ENOSPC
	case windows.ERROR_NOT_SAME_DEVICE:
		p = syscall.EXDEV
	case windows.ERROR_FILENAME_EXCED_RANGE:
		p = syscall.ENAMETOOLONG
	case windows.ERROR_SHARING_VIOLATION, windows.ERROR_LOCK_VIOLATION, windows.ERROR_BUSY:
		p = syscall.EBUSY
	case windows.ERROR_INVALID_NAME:
		p = syscall.EINVAL
	case windows.ERROR_NOT_SUPPORTED:
		p = syscall.ENOSYS
	default:
		return err
	}
	return &errnoError{err, p}
}

// statVFS is not there on Windows.
func statVFS(root *os.Root) (*sftp.StatVFS, error) {
	return nil, &os.PathError{Op: "statvfs", Path: root.Name(), Err: syscall.ENOSYS}
}
