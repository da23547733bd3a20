package share

import (
	"errors"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/vmbox/vmbox/guest/api"
)

// failure is an error as the request server sends it to the client. The
// server's statusFromError takes the status message from Error, which is
// api.ShareErrorMessage of the error, and the status code from the sftp
// error code that Unwrap offers. The code is SSH_FX_FAILURE for all but
// ENOENT and ENOSYS: pkg/sftp's client replaces a PERMISSION_DENIED
// status with a bare os.ErrPermission, which would lose the message and
// with it EACCES, EPERM and EROFS apart.
type failure struct{ err error }

func (f *failure) Error() string { return api.ShareErrorMessage(f.err) }

func (f *failure) Unwrap() []error {
	code := sftp.ErrSSHFxFailure
	switch {
	case errors.Is(f.err, syscall.ENOENT):
		code = sftp.ErrSSHFxNoSuchFile
	case errors.Is(f.err, syscall.ENOSYS):
		code = sftp.ErrSSHFxOpUnsupported
	}
	return []error{code, f.err}
}

// fail makes err a failure, naming the POSIX errno of a host error that
// is not one itself (Windows).
func fail(err error) error {
	var f *failure
	if err == nil || errors.As(err, &f) {
		return err
	}
	return &failure{posixErrno(err)}
}

// errnoError is a host error with the POSIX errno it stands for.
type errnoError struct {
	err   error
	errno syscall.Errno
}

func (e *errnoError) Error() string   { return e.err.Error() }
func (e *errnoError) Unwrap() []error { return []error{e.err, e.errno} }
