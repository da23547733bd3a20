package nsinit

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The exec trampoline: a process the runtime starts with a command that
// lives on a FUSE file system (a host folder shared into the VM). The
// process that forks it serves that file system, and a vfork child that
// waits on it (its exec reads the command's file) can deadlock it: until
// the child has exec'd, the forking thread keeps its P and a stop of the
// world waits for it. So the child execs this binary, from a descriptor
// that is not on FUSE, and this process execs the command.
const (
	ExecArg0 = "vmbox-exec-trampoline"
	ExecEnv  = "_VMBOX_EXEC_TRAMPOLINE"
	// ExecFD is the descriptor of this binary in the trampoline.
	ExecFD = 3
)

// ExecTrampolinePath is where a child of the runtime reaches this binary
// from inside a container, through the descriptor it inherits.
const ExecTrampolinePath = "/proc/self/fd/3"

// IsFUSE says whether the file at path is on a FUSE file system.
func IsFUSE(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.FUSE_SUPER_MAGIC
}

// execTrampoline execs os.Args[1] with os.Args[2:]; it never returns.
func execTrampoline() {
	os.Unsetenv(ExecEnv)
	unix.CloseOnExec(ExecFD)
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "exec trampoline: no command")
		os.Exit(ExitEngineError)
	}
	err := execRetryingBusy(func() error { return unix.Exec(os.Args[1], os.Args[2:], os.Environ()) })
	var errno syscall.Errno
	errors.As(err, &errno)
	fmt.Fprintf(os.Stderr, "exec: %q: %v\n", os.Args[2], err)
	os.Exit(ExecErrorCode(errno))
}
