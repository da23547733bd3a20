package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

// Options configure a Runtime.
type Options struct {
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which container cgroups are made. Default "vmbox".
	CgroupParent string
	// CgroupMode is "v1" or "v2"; empty detects it (cgroups.Mode).
	CgroupMode string
	// CgroupRoot is where the hierarchies are mounted; default /sys/fs/cgroup.
	CgroupRoot string
	// Cold disables the warm helper: every start pays a re-exec.
	Cold bool
	// Trace makes the inits report the time spent per set-up step on the
	// program's stderr.
	Trace bool
}

// Runtime starts containers. It is safe for concurrent use.
type Runtime struct {
	opts    Options
	cg      cgroupDriver
	devnull *os.File
	pool    *pool
	spawnCh chan spawnReq
	spawnWG sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	spawning sync.WaitGroup // requests on their way to spawnCh
}

// New returns a Runtime. It starts warming a helper in the background.
//
// One Runtime owns its cgroup parent: New kills whatever processes are left
// in cgroups under it (from a previous run of the program, which is gone)
// and removes those cgroups.
func New(opts Options) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the container runtime must run as root")
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = "vmbox"
	}
	cg, err := newCgroupDriver(opts.CgroupMode, opts.CgroupRoot, opts.CgroupParent)
	if err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	r := &Runtime{opts: opts, cg: cg, devnull: devnull, spawnCh: make(chan spawnReq)}
	if err := r.removeStale(); err != nil {
		devnull.Close()
		return nil, err
	}
	r.spawnWG.Add(1)
	go r.spawnLoop()
	r.pool = newPool(r, !opts.Cold)
	r.pool.warm(false)
	return r, nil
}

// Close stops the warm helpers. Running containers are not touched.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.pool.close()
	r.spawning.Wait()
	close(r.spawnCh)
	r.spawnWG.Wait()
	return r.devnull.Close()
}

// Settle waits until no warm helper is being started: every process and
// cgroup the runtime has then belongs to a container or to a ready helper.
func (r *Runtime) Settle() { r.pool.settle() }

// ---- helper spawning ----

type spawnReq struct {
	hostNet bool
	reply   chan spawnResult
}

type spawnResult struct {
	h   *helper
	err error
}

// helper is an init waiting for its configuration, already inside the
// cgroup it will confine the container with.
type helper struct {
	proc    *os.Process
	sock    int
	hostNet bool
	cg      cgroup
}

func (h *helper) discard() {
	unix.Close(h.sock)
	_ = h.proc.Kill()
	_, _ = h.proc.Wait()
	_ = h.cg.remove()
}

// spawnLoop forks every helper from one locked thread. The helpers ask for
// SIGKILL when their parent dies, and Linux means the parent thread: Go
// ends a thread whenever a goroutine that locked it returns (exec does
// that on purpose), so forking from an arbitrary thread could kill a
// container at a random later moment.
func (r *Runtime) spawnLoop() {
	defer r.spawnWG.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread() // the thread is clean: give it back
	for req := range r.spawnCh {
		h, err := r.doSpawn(req.hostNet)
		req.reply <- spawnResult{h, err}
		if errors.Is(err, errThreadStuck) {
			// This thread could not leave a container's cgroup: let it die
			// (a locked goroutine's thread ends with it) and go on with a
			// fresh one.
			r.spawnWG.Add(1)
			go r.spawnLoop()
			runtimeGoexitLocked()
			return
		}
	}
}

// errThreadStuck reports that the spawning thread could not move back out
// of a helper's cgroup (v1).
var errThreadStuck = errors.New("the spawning thread could not leave a container cgroup")

// runtimeGoexitLocked ends the calling goroutine while its thread is still
// locked, which makes Go end the thread too.
func runtimeGoexitLocked() {
	runtime.LockOSThread() // a second lock: the deferred unlock leaves one
}

func (r *Runtime) spawn(hostNet bool) (*helper, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("runtime closed")
	}
	r.spawning.Add(1)
	r.mu.Unlock()
	defer r.spawning.Done()
	reply := make(chan spawnResult, 1)
	r.spawnCh <- spawnReq{hostNet: hostNet, reply: reply}
	res := <-reply
	return res.h, res.err
}

func (r *Runtime) doSpawn(hostNet bool) (*helper, error) {
	cg, err := r.cg.create(cgroupName())
	if err != nil {
		return nil, err
	}
	h, err := r.spawnInto(cg, hostNet)
	if err != nil {
		_ = cg.remove()
		return nil, err
	}
	return h, nil
}

func (r *Runtime) spawnInto(cg cgroup, hostNet bool) (*helper, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	child := os.NewFile(uintptr(fds[1]), "init")
	defer child.Close()
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	mode := nsinit.NetHost
	if !hostNet {
		flags |= unix.CLONE_NEWNET
		mode = nsinit.NetPrivate
	}
	sys := &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	cgfd, err := cg.dirFD()
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	if cgfd >= 0 {
		defer unix.Close(cgfd)
		sys.UseCgroupFD, sys.CgroupFD = true, cgfd
	} else {
		if err := r.cg.enterThread(cg); err != nil {
			unix.Close(fds[0])
			return nil, err
		}
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{nsinit.Arg0}, &os.ProcAttr{
		// The init's Go runtime only needs one P and never needs a GC.
		Env:   []string{nsinit.Env + "=" + mode, "GOMAXPROCS=1", "GOGC=off"},
		Files: []*os.File{r.devnull, r.devnull, os.Stderr, child},
		Sys:   sys,
	})
	var stuck error
	if cgfd < 0 {
		if err := r.cg.leaveThread(); err != nil {
			stuck = fmt.Errorf("%w: %v", errThreadStuck, err)
		}
	}
	if err != nil {
		unix.Close(fds[0])
		return nil, errors.Join(fmt.Errorf("start container init: %w", err), stuck)
	}
	h := &helper{proc: proc, sock: fds[0], hostNet: hostNet, cg: cg}
	if stuck != nil {
		// Its parent thread is about to end, and with it (Pdeathsig) the
		// helper: do not hand it out.
		unix.Close(h.sock)
		_ = h.proc.Kill()
		_, _ = h.proc.Wait()
		return nil, stuck
	}
	return h, nil
}

// cgroupName names a helper's cgroup. It is not the container's ID: the
// cgroup exists before the container does (and v2 cannot rename cgroups).
func cgroupName() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "c" + hex.EncodeToString(b[:])
}

// removeStale kills and removes what earlier runs left under the parent.
func (r *Runtime) removeStale() error {
	names, err := r.cg.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		cg, ok, err := r.cg.load(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		for i := 0; i < 200 && !cg.empty(); i++ {
			cg.killAll()
			sleepBackoff(i)
		}
		if err := cg.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ---- starting a container ----

// Container is a started container: its init process and what confines it.
type Container struct {
	*Process
	id      string
	r       *Runtime
	cg      cgroup
	hostNet bool

	mu    sync.RWMutex // guards pidfd against Exec
	pidfd int          // -1 once the init has exited
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Start starts the container described by s and returns once its command
// has been exec'd (or failed to be: a *StartError carries Docker's code).
func (r *Runtime) Start(ctx context.Context, s *Spec) (*Container, error) {
	if err := validID(s.ID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(s.Dir) {
		return nil, fmt.Errorf("container directory %q is not absolute", s.Dir)
	}
	if len(s.Args) == 0 {
		return nil, &StartError{Code: ExitEngineError, Msg: "no command specified"}
	}
	var hostNet bool
	switch s.NetworkMode {
	case "", NetworkNone, "default", "bridge":
	case NetworkHost:
		hostNet = true
	default:
		return nil, fmt.Errorf("unsupported network mode %q", s.NetworkMode)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	cfg := nsinit.Config{
		Dir: s.Dir, Layers: s.Layers, Args: s.Args, User: s.User,
		WorkingDir: s.WorkingDir, Hostname: s.Hostname, Tty: s.Tty,
		Privileged: s.Privileged, ReadOnly: s.ReadOnly, Trace: r.opts.Trace,
	}
	base := []string{}
	if s.Hostname != "" {
		base = append(base, "HOSTNAME="+s.Hostname)
	}
	if s.Tty {
		base = append(base, "TERM=xterm")
		cfg.Rows, cfg.Cols = uint16(s.ConsoleSize[0]), uint16(s.ConsoleSize[1])
	}
	cfg.Env = MergeEnv(base, s.Env)
	payload, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}

	tr := nsinit.NewTracer(r.opts.Trace, "start")
	st := stdioSet{}
	if !s.Tty {
		if err := st.open(r.devnull, s.OpenStdin); err != nil {
			return nil, err
		}
	}
	tr.Step("prepare")
	h, err := r.handOff(ctx, hostNet, payload, st.child())
	tr.Step("handoff")
	// The next helper starts once this container's start is over: its Go
	// start-up and its clone would compete for the CPUs and the kernel's
	// mount and cgroup locks with this start's critical path.
	defer r.pool.warm(hostNet)
	st.closeChild()
	if err != nil {
		st.closeParent()
		return nil, err
	}
	// A start that hangs (a stuck mount, say) ends with the context: the
	// init is killed, which ends the wait for its answer.
	stop := context.AfterFunc(ctx, func() { _ = h.proc.Kill() })
	c, err := r.finishStart(s, h, &st, tr)
	if !stop() && err == nil {
		c.Signal(syscall.SIGKILL)
		c.Wait()
		closeAll(c.Stdin, c.Stdout, c.Stderr, c.Pty)
		err = ctx.Err()
	}
	if err != nil {
		st.closeParent()
		return nil, err
	}
	return c, nil
}

// handOff gives the configuration to a warm helper (a cold one if the warm
// one turns out to be dead).
func (r *Runtime) handOff(ctx context.Context, hostNet bool, payload []byte, fds []int) (*helper, error) {
	h, err := r.pool.get(ctx, hostNet)
	if err != nil {
		return nil, err
	}
	if err := nsinit.SendMsg(h.sock, nsinit.MsgConfig, payload, fds); err != nil {
		h.discard()
		if h, err = r.spawn(hostNet); err != nil {
			return nil, err
		}
		if err := nsinit.SendMsg(h.sock, nsinit.MsgConfig, payload, fds); err != nil {
			h.discard()
			return nil, fmt.Errorf("configure container init: %w", err)
		}
	}
	return h, nil
}

func (r *Runtime) finishStart(s *Spec, h *helper, st *stdioSet, tr *nsinit.Tracer) (*Container, error) {
	// The init is mounting the root file system meanwhile.
	err := h.cg.setLimits(s.Resources, s.Privileged)
	tr.Step("limits")
	if err == nil {
		// A failed send means the init is gone: its answer says why.
		_ = nsinit.SendMsg(h.sock, nsinit.MsgGo, nil, nil)
	}
	var pty *os.File
	var initErr *nsinit.ErrorMsg
	if err == nil {
		for {
			kind, payload, fds, rerr := nsinit.RecvMsg(h.sock)
			if rerr == io.EOF {
				break
			}
			if rerr == unix.ECONNRESET {
				// The init exited with our "go" unread. The error is
				// reported once; what it sent before is still queued.
				continue
			}
			if rerr != nil {
				err = fmt.Errorf("container init: %w", rerr)
				break
			}
			switch kind {
			case nsinit.MsgTty:
				if len(fds) == 1 {
					pty = os.NewFile(uintptr(fds[0]), "pty")
				}
			case nsinit.MsgError:
				initErr = &nsinit.ErrorMsg{Code: ExitEngineError}
				if json.Unmarshal(payload, initErr) != nil {
					initErr.Msg = string(payload)
				}
			}
			if initErr != nil {
				break
			}
		}
	}
	if err == nil && initErr != nil {
		err = &StartError{Code: initErr.Code, Msg: initErr.Msg}
	}
	if err == nil && s.Tty && pty == nil {
		err = errors.New("container init sent no terminal")
	}
	if err != nil {
		h.discard()
		if pty != nil {
			pty.Close()
		}
		return nil, err
	}
	tr.Step("exec")
	unix.Close(h.sock)
	pidfd, perr := unix.PidfdOpen(h.proc.Pid, 0)
	if perr != nil {
		pidfd = -1 // exec will report the container as not running
	}
	c := &Container{id: s.ID, r: r, cg: h.cg, hostNet: h.hostNet, pidfd: pidfd}
	c.Process = newProcess(h.proc, st, pty, c.exited)
	return c, nil
}

// exited runs once the init has been reaped: every process of the
// container is gone then (the pid namespace died with its init), and so are
// its mounts, so its cgroup can go.
func (c *Container) exited(e *Exit) {
	c.mu.Lock()
	if c.pidfd >= 0 {
		unix.Close(c.pidfd)
		c.pidfd = -1
	}
	c.mu.Unlock()
	if c.cg != nil {
		e.OOMKilled = c.cg.oomKilled()
		if err := c.cg.remove(); err != nil {
			// Leave it to Cleanup; an exited container holds no process.
			_ = err
		}
	}
}

// Cgroups lists the cgroups that exist under the runtime's cgroup parent:
// one per running container and one per warm helper.
func (r *Runtime) Cgroups() ([]string, error) { return r.cg.list() }

// Cgroup returns the name of the container's cgroup under the runtime's
// cgroup parent.
func (c *Container) Cgroup() string { return c.cg.name() }

func sleepBackoff(i int) {
	d := time.Duration(i+1) * 100 * time.Microsecond
	if d > 20*time.Millisecond {
		d = 20 * time.Millisecond
	}
	time.Sleep(d)
}

func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil && !isNilFile(c) {
			c.Close()
		}
	}
}

func isNilFile(c io.Closer) bool {
	f, ok := c.(*os.File)
	return ok && f == nil
}

// ---- stdio ----

type stdioSet struct {
	childIn, childOut, childErr *os.File
	parentIn                    *os.File
	parentOut, parentErr        *os.File
	devnull                     *os.File
}

func (s *stdioSet) open(devnull *os.File, stdin bool) error {
	s.devnull = devnull
	s.childIn = devnull
	if stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		s.childIn, s.parentIn = r, w
	}
	r, w, err := os.Pipe()
	if err != nil {
		s.closeChild()
		s.closeParent()
		return err
	}
	s.parentOut, s.childOut = r, w
	r, w, err = os.Pipe()
	if err != nil {
		s.closeChild()
		s.closeParent()
		return err
	}
	s.parentErr, s.childErr = r, w
	return nil
}

func (s *stdioSet) child() []int {
	if s.childOut == nil {
		return nil
	}
	return []int{int(s.childIn.Fd()), int(s.childOut.Fd()), int(s.childErr.Fd())}
}

func (s *stdioSet) closeChild() {
	for _, f := range []*os.File{s.childIn, s.childOut, s.childErr} {
		if f != nil && f != s.devnull {
			f.Close()
		}
	}
	s.childIn, s.childOut, s.childErr = nil, nil, nil
}

func (s *stdioSet) closeParent() {
	for _, f := range []*os.File{s.parentIn, s.parentOut, s.parentErr} {
		if f != nil {
			f.Close()
		}
	}
}

// ---- processes ----

// Process is a running container init or exec'd process. Stdin is set when
// the process was given a stdin pipe, Stdout and Stderr unless it has a
// terminal, whose master is then Pty (reads are the terminal's output,
// writes its input). The caller reads the streams to their end and closes
// them.
type Process struct {
	Pid    int
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	Stderr io.ReadCloser
	Pty    *os.File

	proc   *os.Process
	onExit func(*Exit)
	once   sync.Once
	done   chan struct{}
	exit   Exit
	err    error
}

func newProcess(proc *os.Process, st *stdioSet, pty *os.File, onExit func(*Exit)) *Process {
	p := &Process{Pid: proc.Pid, proc: proc, Pty: pty, onExit: onExit, done: make(chan struct{})}
	if st.parentIn != nil {
		p.Stdin = st.parentIn
	}
	if st.parentOut != nil {
		p.Stdout, p.Stderr = st.parentOut, st.parentErr
	}
	return p
}

// Wait waits for the process to exit. It may be called any number of times
// from any goroutine; all get the same answer.
func (p *Process) Wait() (Exit, error) {
	p.once.Do(func() {
		defer close(p.done)
		state, err := p.proc.Wait()
		if err != nil {
			p.err = fmt.Errorf("wait: %w", err)
			return
		}
		ws, _ := state.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			p.exit.Signal = ws.Signal()
			p.exit.Code = ExitSignalBase + int(ws.Signal())
		default:
			p.exit.Code = ws.ExitStatus()
		}
		if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
			p.exit.UserTime = ru.Utime.Nano()
			p.exit.SysTime = ru.Stime.Nano()
		}
		if p.onExit != nil {
			p.onExit(&p.exit)
		}
	})
	<-p.done
	return p.exit, p.err
}

// Done is closed once Wait has returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process. A container's init, as PID 1 of its pid
// namespace, only reacts to signals it handles (and SIGKILL).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return ErrNotRunning
	default:
	}
	if err := p.proc.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal %d: %w", sig, err)
	}
	return nil
}

// Resize sets the terminal's window size.
func (p *Process) Resize(rows, cols uint) error {
	if p.Pty == nil {
		return errors.New("the process has no terminal")
	}
	ws := &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}
	if err := unix.IoctlSetWinsize(int(p.Pty.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}
