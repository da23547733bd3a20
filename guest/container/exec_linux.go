package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

// Exec starts a further process in the running container: in its mount,
// pid, uts, ipc and net namespaces and its cgroup, with the same capability
// bounding set and no_new_privs as the init (unless es.Privileged).
//
// No re-exec is needed: a goroutine locks its thread, gives the thread its
// own filesystem context (unshare CLONE_FS), joins the container's
// namespaces through the init's pidfd, confines the thread's credentials
// and forks the command from it. The fork inherits exactly that thread's
// state. The thread is never unlocked, so Go destroys it afterwards.
func (c *Container) Exec(ctx context.Context, es *ExecSpec) (*Process, error) {
	if len(es.Args) == 0 {
		return nil, &StartError{Code: ExitEngineError, Msg: "no command specified"}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := stdioSet{}
	if !es.Tty {
		if err := st.open(c.r.devnull, es.OpenStdin); err != nil {
			return nil, err
		}
	}
	type result struct {
		proc *os.Process
		pty  *os.File
		err  error
	}
	var res result
	onThrowawayThread(func() {
		proc, pty, err := c.execOnThread(es, &st)
		res = result{proc, pty, err}
	})
	st.closeChild()
	if res.err != nil {
		st.closeParent()
		return nil, res.err
	}
	return newProcess(res.proc, &st, res.pty, nil), nil
}

func (c *Container) execOnThread(es *ExecSpec, st *stdioSet) (*os.Process, *os.File, error) {
	// This binary, for a command on FUSE (see nsinit.ExecArg0): opened
	// before the thread leaves the VM's mounts.
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, nil, fmt.Errorf("exec: open this binary: %w", err)
	}
	defer self.Close()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.pidfd < 0 {
		return nil, nil, fmt.Errorf("container %s: %w", c.id, ErrNotRunning)
	}
	// The cgroup first: the container's mount namespace has no cgroup
	// file system.
	sys := &syscall.SysProcAttr{Setsid: true}
	cgfd, err := c.cg.dirFD()
	if err != nil {
		return nil, nil, err
	}
	if cgfd >= 0 {
		defer unix.Close(cgfd)
		sys.UseCgroupFD, sys.CgroupFD = true, cgfd
	} else if err := c.cg.joinThread(); err != nil {
		return nil, nil, err
	}

	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, nil, fmt.Errorf("exec: unshare fs: %w", err)
	}
	// Docker's umask, on this thread's own fs context (unshared above).
	unix.Umask(0o022)
	// The init's root, taken before joining: joining a mount namespace
	// sets the thread's root to the namespace's original root mount and
	// what is stacked on it, which is the container's root on most hosts
	// but not where the VM's own root is the initramfs (the kernel's
	// rootfs, under every other mount). Entering the init's root is right
	// everywhere. The pidfd says whether the pid was still the init's
	// when its root was opened (a pid is only reused once reaped).
	rootfd, err := unix.Open("/proc/"+strconv.Itoa(c.Pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, nil, fmt.Errorf("container %s: %w", c.id, ErrNotRunning)
		}
		return nil, nil, fmt.Errorf("exec: open the container's root: %w", err)
	}
	defer unix.Close(rootfd)
	if err := unix.PidfdSendSignal(c.pidfd, 0, nil, 0); err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", c.id, ErrNotRunning)
	}
	flags := unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID
	if !c.hostNet {
		flags |= unix.CLONE_NEWNET
	}
	if err := unix.Setns(c.pidfd, flags); err != nil {
		if err == unix.ESRCH {
			return nil, nil, fmt.Errorf("container %s: %w", c.id, ErrNotRunning)
		}
		return nil, nil, fmt.Errorf("exec: join the container's namespaces: %w", err)
	}
	if err := unix.Fchdir(rootfd); err != nil {
		return nil, nil, fmt.Errorf("exec: enter the container's root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return nil, nil, fmt.Errorf("exec: enter the container's root: %w", err)
	}
	// From here on the thread sees the container's root.
	u, err := nsinit.LookupUser(es.User)
	if err != nil {
		return nil, nil, &StartError{Code: ExitEngineError, Msg: err.Error()}
	}
	env := es.Env
	if !nsinit.EnvHas(env, "PATH") {
		env = append([]string{"PATH=" + DefaultPath}, env...)
	}
	if !nsinit.EnvHas(env, "HOME") {
		env = append(env, "HOME="+u.Home)
	}
	cwd := es.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil && !errors.Is(err, unix.EROFS) {
		return nil, nil, fmt.Errorf("exec: create working directory: %w", err)
	}
	if err := unix.Chdir(cwd); err != nil {
		return nil, nil, fmt.Errorf("exec: chdir to %s: %w", cwd, err)
	}
	path, err := nsinit.LookCommand(es.Args[0], nsinit.EnvGet(env, "PATH"))
	if err != nil {
		return nil, nil, err
	}
	files := []*os.File{st.childIn, st.childOut, st.childErr}
	var pty *os.File
	if es.Tty {
		master, slave, err := openExecTty(es.ConsoleSize)
		if err != nil {
			return nil, nil, err
		}
		defer slave.Close()
		pty = master
		files = []*os.File{slave, slave, slave}
		sys.Setctty, sys.Ctty = true, 0
	}
	if err := nsinit.ConfineThread(u, es.Privileged); err != nil {
		if pty != nil {
			pty.Close()
		}
		return nil, nil, err
	}
	argv0, argv := path, es.Args
	if nsinit.IsFUSE(path) {
		argv0, argv = nsinit.ExecTrampolinePath, append([]string{nsinit.ExecArg0, path}, es.Args...)
		env = append(slices.Clone(env), nsinit.ExecEnv+"=1")
		files = append(files, self)
	}
	proc, err := os.StartProcess(argv0, argv, &os.ProcAttr{Env: env, Files: files, Sys: sys})
	if err != nil {
		if pty != nil {
			pty.Close()
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return nil, nil, &StartError{Code: nsinit.ExecErrorCode(errno), Msg: fmt.Sprintf("exec: %q: %v", es.Args[0], errno)}
		}
		return nil, nil, fmt.Errorf("exec: %w", err)
	}
	return proc, pty, nil
}

// openExecTty allocates a terminal from the container's devpts instance
// (the calling thread is in the container's mount namespace).
func openExecTty(size api.TermSize) (master, slave *os.File, err error) {
	m, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("exec: open ptmx: %w", err)
	}
	fail := func(e error) (*os.File, *os.File, error) {
		unix.Close(m)
		return nil, nil, e
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return fail(fmt.Errorf("exec: unlock pty: %w", err))
	}
	n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
	if err != nil {
		return fail(fmt.Errorf("exec: pty number: %w", err))
	}
	if size.Rows > 0 && size.Cols > 0 {
		_ = unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	s, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("exec: open %s: %w", name, err))
	}
	return os.NewFile(uintptr(m), "pty"), os.NewFile(uintptr(s), name), nil
}

// onThrowawayThread runs fn on an OS thread of its own that Go destroys
// afterwards, so that fn may change the thread's namespaces and credentials.
// The main thread cannot be destroyed (Go wedges it instead, forever in
// whatever fn joined), so if the goroutine lands there it keeps the main
// thread busy while a second goroutine does the work elsewhere.
func onThrowawayThread(fn func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			go func() {
				runtime.LockOSThread() // not the main thread: that one is taken
				// Deliberately no UnlockOSThread: the thread must die.
				fn()
				close(done)
			}()
			<-done
			runtime.UnlockOSThread() // the main thread is untouched
			return
		}
		// Deliberately no UnlockOSThread: the thread must die.
		fn()
		close(done)
	}()
	<-done
}
