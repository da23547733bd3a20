package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

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
	if hostNet && s.NetNS != "" {
		return nil, errors.New("a container cannot both use the host's network and join another's")
	}
	cfg := nsinit.Config{
		Dir: s.Dir, Layers: s.Layers, Args: s.Args, User: s.User,
		WorkingDir: s.WorkingDir, Hostname: s.Hostname, Tty: s.Tty,
		Privileged: s.Privileged, ReadOnly: s.ReadOnly, Trace: r.opts.Trace,
		Mounts: s.Mounts, JoinNetNS: s.NetNS != "",
	}
	base := []string{}
	if s.Hostname != "" {
		base = append(base, "HOSTNAME="+s.Hostname)
	}
	if s.Tty {
		base = append(base, "TERM=xterm")
		cfg.Rows, cfg.Cols = s.ConsoleSize.Rows, s.ConsoleSize.Cols
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
	fds := st.child()
	if s.NetNS != "" {
		ns, err := os.Open(s.NetNS)
		if err != nil {
			st.closeParent()
			st.closeChild()
			return nil, fmt.Errorf("network namespace to join: %w", err)
		}
		defer ns.Close()
		fds = append(fds, int(ns.Fd()))
	}
	tr.Step("prepare")
	h, err := r.handOff(ctx, hostNet, payload, fds)
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

// earlyInitError is the error the init sent before it exited, if it has
// sent one within a moment.
func earlyInitError(sock int) error {
	fds := []unix.PollFd{{Fd: int32(sock), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 200); err != nil || n == 0 {
		return nil
	}
	kind, payload, _, err := nsinit.RecvMsg(sock)
	if err != nil || kind != nsinit.MsgError {
		return nil
	}
	m := nsinit.ErrorMsg{Code: ExitEngineError}
	if json.Unmarshal(payload, &m) != nil {
		m.Msg = string(payload)
	}
	return &StartError{Code: m.Code, Msg: m.Msg}
}

func (r *Runtime) finishStart(s *Spec, h *helper, st *stdioSet, tr *nsinit.Tracer) (*Container, error) {
	// The init is mounting the root file system meanwhile.
	err := h.cg.setLimits(s.Resources, s.Privileged)
	tr.Step("limits")
	if err == nil && s.Prepare != nil {
		if err = s.Prepare(h.proc.Pid); err != nil {
			err = fmt.Errorf("prepare the container: %w", err)
		}
		tr.Step("prepared")
	}
	if err != nil {
		// The init may have failed first (a bind source it could not
		// mount), taking the namespaces Prepare works on with it: its
		// own error is the one to report.
		if ierr := earlyInitError(h.sock); ierr != nil {
			err = ierr
		}
	}
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

// Cgroup returns the name of the container's cgroup under the runtime's
// cgroup parent.
func (c *Container) Cgroup() string { return c.cg.name() }
