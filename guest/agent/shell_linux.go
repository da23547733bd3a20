package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/internal/signals"
)

// shell runs a command in the guest itself (not in a container): argv, or
// an interactive login shell when argv is empty.
// shellTrampoline is the VM's own shell, outside every host folder.
const shellTrampoline = "/bin/sh"

func (a *Agent) shell(ctx context.Context, s *Session, args api.ShellArgs) int {
	argv := args.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh", "-l"}
	}
	if a.WaitDataDisk != nil {
		if err := a.WaitDataDisk(ctx); err != nil {
			// The shell is how a broken disk is looked into: it runs.
			fmt.Fprintf(s.Stderr, "vmbox shell: warning: %v\n", err)
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(s.Stderr, "vmbox shell: %s: command not found\n", argv[0])
		return api.ExitNotFound
	}
	// The child of a fork must not touch a host folder before its exec:
	// the agent serves their FUSE mounts, and while a vfork child has not
	// exec'd, a stop of the agent's world (its garbage collector) waits
	// for it, which waits for the agent. So the child execs /bin/sh from
	// the VM's own root, and that shell enters the home directory (which
	// may be a host folder) and runs the command (which may live in one).
	home := "/"
	if dirExists("/root") {
		home = "/root"
	}
	cmd := exec.Command(shellTrampoline, append([]string{"-c", `cd "$0" 2>/dev/null; exec "$@"`, home, path}, argv[1:]...)...)
	cmd.Env = shellEnv(s, args.Env)
	cmd.Dir = "/"
	var tty *os.File
	if s.PTY != nil {
		master, slave, err := openPTY()
		if err != nil {
			return fail(s, err)
		}
		defer master.Close()
		setWinsize(master, s.PTY.Size)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		tty = master
		if err := cmd.Start(); err != nil {
			slave.Close()
			return fail(s, fmt.Errorf("start %s: %w", argv[0], err))
		}
		slave.Close()
		go io.Copy(master, s.Stdin)
		out := make(chan struct{})
		go func() {
			io.Copy(s.Stdout, master) // ends with EIO once the last writer is gone
			close(out)
		}()
		code := a.waitShell(ctx, s, cmd, tty)
		<-out
		return code
	}
	cmd.Stdin = s.Stdin
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fail(s, fmt.Errorf("start %s: %w", argv[0], err))
	}
	return a.waitShell(ctx, s, cmd, nil)
}

// waitShell forwards signals and resizes until cmd exits, and converts its
// end into an exit code. If the client goes away, the command is killed.
func (a *Agent) waitShell(ctx context.Context, s *Session, cmd *exec.Cmd, tty *os.File) int {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			return exitCode(err)
		case <-ctx.Done():
			cmd.Process.Kill()
		case sz := <-s.Resize:
			if tty != nil {
				setWinsize(tty, sz)
			}
		case name := <-s.Signals:
			if n, err := signals.Parse(name); err == nil {
				cmd.Process.Signal(syscall.Signal(n))
			}
		}
	}
}

// exitCode maps a finished command to a shell-style exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return api.ExitSignalBase + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return api.ExitEngineError
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// openPTY allocates a pseudo-terminal pair from /dev/ptmx.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	sl, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty slave: %w", err)
	}
	return m, sl, nil
}

func setWinsize(f *os.File, sz api.TermSize) {
	if sz.Rows == 0 || sz.Cols == 0 {
		return
	}
	unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Rows, Col: sz.Cols})
}
