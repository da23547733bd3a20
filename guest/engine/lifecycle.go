package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

// run is one start of a container, from the moment it may be waited for or
// attached to (before it starts) until its exit is recorded.
type run struct {
	started chan struct{} // closed when the process runs, or failed to
	drained chan struct{} // closed when its output has been delivered
	exited  chan struct{} // closed when its exit is recorded
	rc      *container.Container
	code    int   // exit code, valid once exited is closed
	err     error // the start's failure, if it failed
	pumps   sync.WaitGroup
}

func newRun() *run {
	return &run{started: make(chan struct{}), drained: make(chan struct{}), exited: make(chan struct{})}
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Create creates a container from cfg, pulling its image first when it is
// missing and cfg.Pull allows ("missing", the default; "always"; "never").
// pull says how to reach the registry and where the progress goes.
func (e *Engine) Create(ctx context.Context, cfg api.ContainerConfig, pull PullOptions) (api.CreateReply, error) {
	if e.isClosed() {
		return api.CreateReply{}, ErrClosed
	}
	if cfg.Image == "" {
		return api.CreateReply{}, fmt.Errorf("%w: no image given", ErrInvalid)
	}
	name := stripSlash(cfg.Name)
	if name != "" && !validName.MatchString(name) {
		return api.CreateReply{}, fmt.Errorf("%w: invalid container name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, cfg.Name)
	}
	network, err := networkMode(cfg.NetworkMode)
	if err != nil {
		return api.CreateReply{}, err
	}
	if cfg.Memory < 0 || cfg.NanoCPUs < 0 || cfg.PidsLimit < 0 {
		return api.CreateReply{}, fmt.Errorf("%w: negative resource limit", ErrInvalid)
	}
	if cfg.Memory > 0 && cfg.Memory < 6<<20 {
		return api.CreateReply{}, fmt.Errorf("%w: minimum memory limit allowed is 6MB", ErrInvalid)
	}
	img, err := e.image(ctx, cfg, pull)
	if err != nil {
		return api.CreateReply{}, err
	}

	rec := record{Config: cfg, ImageID: img.ID, Layers: img.Layers, Created: time.Now().UTC()}
	rec.Config.Name = name
	rec.Config.NetworkMode = network
	rec.Entrypoint = img.Config.Entrypoint
	if cfg.EntrypointSet || cfg.Entrypoint != nil {
		rec.Entrypoint = cfg.Entrypoint
	}
	rec.Cmd = img.Config.Cmd
	if cfg.Cmd != nil {
		rec.Cmd = cfg.Cmd
	} else if cfg.EntrypointSet || cfg.Entrypoint != nil {
		rec.Cmd = nil // Docker: a new entrypoint drops the image's command
	}
	argv := append(append([]string{}, rec.Entrypoint...), rec.Cmd...)
	if len(argv) == 0 {
		return api.CreateReply{}, fmt.Errorf("%w: no command specified", ErrInvalid)
	}
	rec.Path, rec.Args = argv[0], argv[1:]
	rec.Env = container.MergeEnv(img.Config.Env, cfg.Env)
	rec.WorkingDir = img.Config.WorkingDir
	if cfg.WorkingDir != "" {
		rec.WorkingDir = cfg.WorkingDir
	}
	rec.User = img.Config.User
	if cfg.User != "" {
		rec.User = cfg.User
	}
	rec.State = api.State{Status: statusCreated}

	e.mu.Lock()
	if e.isClosed() {
		e.mu.Unlock()
		return api.CreateReply{}, ErrClosed
	}
	rec.ID = e.newID()
	if name == "" {
		name = e.generateName()
	} else if other, ok := e.byName[name]; ok {
		e.mu.Unlock()
		return api.CreateReply{}, fmt.Errorf("%w: the container name %q is already in use by container %q", ErrConflict, "/"+name, other.rec.ID)
	}
	rec.Name = name
	rec.Hostname = cfg.Hostname
	if rec.Hostname == "" {
		rec.Hostname = rec.ID[:12]
	}
	c := newContainer(e, rec)
	c.next = newRun()
	// Registered before the directory exists so that the name is taken;
	// nothing can start it until Create returns its ID.
	e.byID[rec.ID] = c
	e.byName[name] = c
	e.mu.Unlock()

	err = os.Mkdir(c.dir, 0o700)
	if err == nil {
		c.mu.Lock()
		err = c.persist()
		c.mu.Unlock()
	}
	if err != nil {
		e.mu.Lock()
		delete(e.byID, rec.ID)
		delete(e.byName, name)
		e.mu.Unlock()
		os.RemoveAll(c.dir)
		return api.CreateReply{}, fmt.Errorf("create container: %w", err)
	}
	return api.CreateReply{ID: rec.ID, Warnings: []string{}}, nil
}

func stripSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

func networkMode(m string) (string, error) {
	switch m {
	case "", "none", "default", "bridge":
		// Containers have no network beyond loopback yet; Docker's default
		// mode names fall back to that.
		return container.NetworkNone, nil
	case "host":
		return container.NetworkHost, nil
	}
	return "", fmt.Errorf("%w: network mode %q is not supported (none or host)", ErrInvalid, m)
}

func (c *managedContainer) spec() *container.Spec {
	cfg := c.rec.Config
	return &container.Spec{
		ID:          c.rec.ID,
		Dir:         filepath.Join(c.dir, fsDir),
		Layers:      c.rec.Layers,
		Args:        append([]string{c.rec.Path}, c.rec.Args...),
		Env:         c.rec.Env,
		User:        c.rec.User,
		WorkingDir:  c.rec.WorkingDir,
		Hostname:    c.rec.Hostname,
		Tty:         cfg.Tty,
		ConsoleSize: cfg.ConsoleSize,
		OpenStdin:   cfg.OpenStdin,
		NetworkMode: cfg.NetworkMode,
		Privileged:  cfg.Privileged,
		ReadOnly:    cfg.ReadOnly,
		Resources:   container.Resources{Memory: cfg.Memory, NanoCPUs: cfg.NanoCPUs, PidsLimit: cfg.PidsLimit},
	}
}

// Start starts a created or exited container; starting a running one does
// nothing. A command that cannot run fails with a *container.StartError (see
// container.ExitCode), is recorded as the container's exit code, and removes
// an AutoRemove container.
func (e *Engine) Start(ctx context.Context, ref string) error {
	if e.isClosed() {
		return ErrClosed
	}
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.removing {
		c.mu.Unlock()
		return fmt.Errorf("%w: container %s is being removed", ErrConflict, ref)
	}
	if c.rc != nil {
		c.mu.Unlock()
		return nil
	}
	r := c.next
	lw, err := openLog(c.logPath())
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("open container log: %w", err)
	}
	rc, err := e.rt.Start(ctx, c.spec())
	if err != nil {
		lw.close()
		code := container.ExitCode(err)
		// As Docker: the container stays created (or exited), with the
		// code and the error recorded.
		c.rec.State.ExitCode = code
		c.rec.State.Error = err.Error()
		perr := c.persist()
		c.next = newRun()
		autoRemove := c.rec.Config.AutoRemove
		c.removing = c.removing || autoRemove
		c.mu.Unlock()
		r.code, r.err = code, err
		close(r.started)
		close(r.drained)
		close(r.exited)
		if autoRemove {
			e.remove(c)
		}
		if perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
	r.rc = rc
	c.rc, c.cur = rc, r
	c.log = lw
	c.next = newRun()
	c.monitorDone = make(chan struct{})
	c.rec.State = api.State{
		Status:    statusRunning,
		Running:   true,
		Pid:       rc.Pid,
		StartedAt: time.Now().UTC(),
	}
	perr := c.persist()
	tty := c.rec.Config.Tty
	if tty {
		r.pumps.Add(1)
		go func() { defer r.pumps.Done(); c.pump(rc.Pty, streamStdout, lw, true) }()
	} else {
		r.pumps.Add(2)
		go func() { defer r.pumps.Done(); c.pump(rc.Stdout, streamStdout, lw, false); rc.Stdout.Close() }()
		go func() { defer r.pumps.Done(); c.pump(rc.Stderr, streamStderr, lw, false); rc.Stderr.Close() }()
	}
	go c.monitor(r, lw, c.monitorDone)
	close(r.started)
	if e.isClosed() {
		_ = rc.Signal(syscall.SIGKILL) // Close may have looked before this run existed
	}
	c.mu.Unlock()
	// A failed save (perr) is not the start's failure: the container runs,
	// and its state is saved again at exit.
	_ = perr
	return nil
}

// monitor records the run's exit once the process is gone and its output
// delivered, and removes an AutoRemove container.
func (c *managedContainer) monitor(r *run, lw *logWriter, done chan struct{}) {
	exit, werr := r.rc.Wait()
	r.pumps.Wait()
	if r.rc.Pty != nil {
		r.rc.Pty.Close()
	}
	if r.rc.Stdin != nil {
		r.rc.Stdin.Close()
	}
	c.mu.Lock()
	lw.close()
	c.rc, c.cur, c.log = nil, nil, nil
	st := &c.rec.State
	st.Status, st.Running, st.Pid = statusExited, false, 0
	st.ExitCode, st.OOMKilled = exit.Code, exit.OOMKilled
	st.FinishedAt = time.Now().UTC()
	if werr != nil {
		st.ExitCode, st.Error = container.ExitEngineError, werr.Error()
	}
	r.code = st.ExitCode
	_ = c.persist() // the exit is known in memory; a full disk must not hang the engine
	autoRemove := c.rec.Config.AutoRemove && !c.removing
	if autoRemove {
		c.removing = true
	}
	c.mu.Unlock()
	close(r.drained)
	close(r.exited)
	if autoRemove {
		c.e.remove(c)
	}
	close(done)
}

// remove forgets the container and deletes its directory: renamed into the
// trash at once (so the name and ID are free and nothing is left under
// containers/), emptied in the background.
//
// The caller has set c.removing (under c.mu), which makes it the only one
// to call remove for c.
func (e *Engine) remove(c *managedContainer) {
	e.mu.Lock()
	if e.byID[c.rec.ID] == c {
		delete(e.byID, c.rec.ID)
	}
	if e.byName[c.rec.Name] == c {
		delete(e.byName, c.rec.Name)
	}
	e.mu.Unlock()
	trash := filepath.Join(e.trash, c.rec.ID)
	if err := os.Rename(c.dir, trash); err != nil {
		trash = c.dir
	}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		os.RemoveAll(trash)
	}()
	close(c.removed)
}

// Remove removes a container. A running one is refused unless force, which
// kills it first.
func (e *Engine) Remove(ctx context.Context, ref string, force bool) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.removing {
		c.mu.Unlock()
		return fmt.Errorf("%w: removal of container %s is already in progress", ErrConflict, ref)
	}
	if c.rc != nil {
		if !force {
			c.mu.Unlock()
			return fmt.Errorf("%w: cannot remove running container %s: stop it first or use force", ErrConflict, ref)
		}
		rc, done := c.rc, c.monitorDone
		c.removing = true // the monitor must not remove it too
		c.mu.Unlock()
		_ = rc.Signal(syscall.SIGKILL)
		<-done // SIGKILL cannot be ignored: the wait is short
		e.remove(c)
		return nil
	}
	if c.removing { // an AutoRemove container removed itself meanwhile
		c.mu.Unlock()
		<-c.removed
		return nil
	}
	c.removing = true
	c.mu.Unlock()
	e.remove(c)
	return nil
}

// Wait waits for the container to reach condition: "not-running" (the
// default: returns at once unless it runs), "next-exit" or "removed".
func (e *Engine) Wait(ctx context.Context, ref, condition string) (api.WaitReply, error) {
	ch, err := e.WaitChan(ctx, ref, condition)
	if err != nil {
		return api.WaitReply{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return api.WaitReply{}, ctx.Err()
	}
}

// WaitChan is Wait in two steps: the wait is registered when it returns
// (so that a caller can answer its client before the container starts, as
// Docker's wait endpoint must), and the reply arrives on the channel. The
// channel is closed without a reply if ctx ends first.
func (e *Engine) WaitChan(ctx context.Context, ref, condition string) (<-chan api.WaitReply, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	out := make(chan api.WaitReply, 1)
	c.mu.Lock()
	var ch chan struct{}
	var r *run
	switch condition {
	case "", "not-running":
		if c.rc == nil {
			out <- api.WaitReply{StatusCode: c.rec.State.ExitCode}
			c.mu.Unlock()
			return out, nil
		}
		r = c.current()
	case "next-exit":
		r = c.current()
		if r == nil {
			r = c.next
		}
	case "removed":
		ch = c.removed
	default:
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: wait condition %q (not-running, next-exit or removed)", ErrInvalid, condition)
	}
	c.mu.Unlock()
	if r != nil {
		ch = r.exited
	}
	go func() {
		defer close(out)
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		if r != nil {
			out <- api.WaitReply{StatusCode: r.code}
			return
		}
		c.mu.Lock()
		code := c.rec.State.ExitCode
		c.mu.Unlock()
		out <- api.WaitReply{StatusCode: code}
	}()
	return out, nil
}

// current returns the running run, or nil. Call with c.mu held.
func (c *managedContainer) current() *run {
	if c.rc == nil {
		return nil
	}
	return c.cur
}

// Stop sends SIGTERM and, if the container has not exited after timeout
// (negative: 10 s), SIGKILL. A container that is not running gives
// ErrNotRunning.
func (e *Engine) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	r := c.current()
	c.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, ref)
	}
	if timeout < 0 {
		timeout = 10 * time.Second
	}
	if timeout > 0 {
		if err := r.rc.Signal(syscall.SIGTERM); err == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			select {
			case <-r.exited:
				return nil
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	_ = r.rc.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends a signal (a name such as "KILL" or "SIGTERM", or a number;
// empty means KILL) to the container's main process.
func (e *Engine) Kill(ctx context.Context, ref, signal string) error {
	sig := syscall.SIGKILL
	if signal != "" {
		s, err := ParseSignal(signal)
		if err != nil {
			return err
		}
		sig = s
	}
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	r := c.current()
	c.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, ref)
	}
	if err := r.rc.Signal(sig); err != nil {
		if errors.Is(err, container.ErrNotRunning) {
			return fmt.Errorf("%w: %s", ErrNotRunning, ref)
		}
		return err
	}
	return nil
}

// Resize sets the terminal size of a running container started with Tty.
func (e *Engine) Resize(ref string, rows, cols uint) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	rc := c.rc
	c.mu.Unlock()
	if rc == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, ref)
	}
	return rc.Resize(rows, cols)
}

// Size is a terminal size.
type Size struct{ Rows, Cols uint }

// Streams connect a client to a container's or an exec's process. Any may
// be nil. Stdin is read until EOF (then the process's stdin is closed,
// unless it is a terminal); with a terminal all output goes to Stdout.
type Streams struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Resize  <-chan Size
	Signals <-chan syscall.Signal
}

// Attach connects streams to the container's next (or current) run and
// returns when that run's output has all been delivered, a write to the
// client failed, or ctx ends. Attaching before Start loses no output.
func (e *Engine) Attach(ctx context.Context, ref string, s Streams) error {
	serve, err := e.attachNow(ref, s)
	if err != nil {
		return err
	}
	return serve(ctx)
}

// attachNow registers the attachment before it returns (from then on no
// output of the run is lost) and returns what serves it, as Attach does.
func (e *Engine) attachNow(ref string, s Streams) (serve func(context.Context) error, err error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	a, r := c.attach(s)
	return func(ctx context.Context) error {
		defer c.detach(a)
		return c.follow(ctx, a, r, s)
	}, nil
}

// attach registers an attachment for the current or next run.
func (c *managedContainer) attach(s Streams) (*attachment, *run) {
	a := &attachment{stdout: s.Stdout, stderr: s.Stderr, failed: make(chan struct{})}
	c.mu.Lock()
	r := c.current()
	if r == nil {
		r = c.next
	}
	c.outMu.Lock()
	c.attached[a] = struct{}{}
	c.outMu.Unlock()
	c.mu.Unlock()
	return a, r
}

func (c *managedContainer) detach(a *attachment) {
	c.outMu.Lock()
	delete(c.attached, a)
	c.outMu.Unlock()
}

// follow serves an attachment for run r until its output is delivered.
func (c *managedContainer) follow(ctx context.Context, a *attachment, r *run, s Streams) error {
	select {
	case <-r.started:
	case <-a.failed:
		return errors.New("attach: client went away")
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	if s.Stdin != nil && c.rec.Config.OpenStdin {
		go func() {
			w := io.Writer(r.rc.Pty)
			if r.rc.Pty == nil {
				w = r.rc.Stdin
			}
			if w == nil {
				return
			}
			_, _ = io.Copy(w, s.Stdin)
			if r.rc.Pty == nil {
				r.rc.Stdin.Close() // as Docker's StdinOnce for attached runs
			}
		}()
	}
	if s.Resize != nil && r.rc.Pty != nil {
		go func() {
			for {
				select {
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					_ = r.rc.Resize(sz.Rows, sz.Cols)
				case <-r.exited:
					return
				}
			}
		}()
	}
	if s.Signals != nil {
		go func() {
			for {
				select {
				case sig, ok := <-s.Signals:
					if !ok {
						return
					}
					_ = r.rc.Signal(sig)
				case <-r.exited:
					return
				}
			}
		}()
	}
	select {
	case <-r.drained:
		return nil
	case <-a.failed:
		return errors.New("attach: client went away")
	case <-ctx.Done():
		return ctx.Err()
	}
}
