package nsinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// LookCommand resolves name the way Docker reports it: against PATH unless
// it contains a slash, relative names against the current directory. Paths
// are resolved by the calling thread, whose root is the container's. The
// error is a *StartError carrying 127 for "not found" and 126 for "cannot be
// executed".
func LookCommand(name, path string) (string, error) {
	if name == "" {
		return "", &StartError{Code: ExitNotFound, Msg: `exec: "": executable file not found in $PATH`}
	}
	if strings.Contains(name, "/") {
		fi, err := os.Stat(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "", &StartError{Code: ExitNotFound, Msg: fmt.Sprintf("exec: %q: stat %s: no such file or directory", name, name)}
		case err != nil:
			return "", &StartError{Code: ExitNotExecutable, Msg: fmt.Sprintf("exec: %q: %v", name, err)}
		case fi.IsDir():
			return "", &StartError{Code: ExitNotExecutable, Msg: fmt.Sprintf("exec: %q: is a directory: permission denied", name)}
		case fi.Mode().Perm()&0o111 == 0:
			return "", &StartError{Code: ExitNotExecutable, Msg: fmt.Sprintf("exec: %q: permission denied", name)}
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		return p, nil
	}
	return "", &StartError{Code: ExitNotFound, Msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", name)}
}

// ExecErrorCode maps an execve errno to Docker's exit code.
func ExecErrorCode(errno syscall.Errno) int {
	switch errno {
	case syscall.ENOENT, syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG:
		return ExitNotFound
	default:
		return ExitNotExecutable
	}
}
