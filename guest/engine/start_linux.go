package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
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

// current returns the running run, or nil. Call with c.mu held.
func (c *managedContainer) current() *run {
	if c.rc == nil {
		return nil
	}
	return c.cur
}

// Start starts a created or exited container; starting a running one does
// nothing. A command that cannot run fails with a *container.StartError (see
// container.ExitCode), is recorded as the container's exit code, and removes
// an AutoRemove container.
//
// A start by hand also cancels a pending restart, clears the stop by hand
// and the restart count.
func (e *Engine) Start(ctx context.Context, ref string) error {
	if e.isClosed() {
		return ErrClosed
	}
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.rc == nil && !c.removing {
		c.cancelRestart()
		c.rec.ManuallyStopped, c.rec.RestartCount = false, 0
	}
	c.mu.Unlock()
	return e.start(ctx, c)
}

// start starts c unless it runs already: Start's work, also the restart
// policy's.
func (e *Engine) start(ctx context.Context, c *managedContainer) error {
	if e.isClosed() {
		return ErrClosed
	}
	ref := c.rec.ID
	c.mu.Lock()
	if c.removing {
		c.mu.Unlock()
		return fmt.Errorf("%w: container %s is being removed", ErrConflict, ref)
	}
	if c.rc != nil {
		c.mu.Unlock()
		return nil
	}
	if c.mountedFS > 0 {
		c.mu.Unlock()
		return fmt.Errorf("%w: files are being copied into or out of container %s; start it again when that is done", ErrConflict, ref)
	}
	r := c.next
	lw, err := openLog(c.logPath())
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("open container log: %w", err)
	}
	spec := c.spec()
	var rc *container.Container
	err = e.populateVolumes(c, spec)
	var ns *netSetup
	if err == nil {
		ns, err = e.prepareNetwork(c, spec)
	}
	if err == nil {
		if rc, err = e.rt.Start(ctx, spec); err != nil {
			ns.undo()
		}
	}
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
	c.net = ns
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
	e.events.publish(c.containerEvent("start", nil))
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
		ConsoleSize: api.ConsoleTermSize(cfg.ConsoleSize),
		OpenStdin:   cfg.OpenStdin,
		NetworkMode: runtimeNetworkMode(cfg.NetworkMode),
		Privileged:  cfg.Privileged,
		ReadOnly:    cfg.ReadOnly,
		Resources:   container.Resources{Memory: cfg.Memory, NanoCPUs: cfg.NanoCPUs, PidsLimit: cfg.PidsLimit},
		Mounts:      append(c.volumeMounts(), tmpfsMounts(cfg.Tmpfs)...),
	}
}

// volumeMounts are the container's volume and bind mounts for the runtime.
func (c *managedContainer) volumeMounts() []container.Mount {
	var out []container.Mount
	for _, m := range c.rec.Mounts {
		src := m.Source
		if m.Type == api.MountVolume {
			src = c.e.vols.dataDir(m.Source)
		}
		out = append(out, container.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return out
}

// tmpfsMounts are the --tmpfs mounts, a parent before what it holds.
func tmpfsMounts(tmpfs map[string]string) []container.Mount {
	var out []container.Mount
	for _, path := range slices.Sorted(maps.Keys(tmpfs)) {
		out = append(out, container.Mount{Type: container.MountTmpfs, Target: filepath.Clean(path), Options: tmpfs[path]})
	}
	return out
}

// runtimeNetworkMode is what the runtime needs of a network mode: the
// host's namespace, or one of the container's own. Bridge, user networks
// and container: are wired into that namespace by the engine (the Prepare
// hook, or NetNS), not by the runtime.
func runtimeNetworkMode(mode string) string {
	if mode == container.NetworkHost {
		return container.NetworkHost
	}
	return container.NetworkNone
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
	// Ports and addresses go before the exit is told: a caller that saw
	// the container stop may publish the same port again.
	c.net.undo()
	lw.close()
	c.rc, c.cur, c.log, c.net = nil, nil, nil, nil
	st := &c.rec.State
	st.Status, st.Running, st.Paused, st.Pid = statusExited, false, false, 0
	st.ExitCode, st.OOMKilled = exit.Code, exit.OOMKilled
	st.FinishedAt = time.Now().UTC()
	if werr != nil {
		st.ExitCode, st.Error = container.ExitEngineError, werr.Error()
	}
	r.code = st.ExitCode
	if !c.removing && !c.e.isClosed() &&
		shouldRestart(c.rec.Config.RestartPolicy, st.ExitCode, c.rec.ManuallyStopped, c.rec.RestartCount) {
		c.scheduleRestart(nextRestartDelay(c.restartDelay, st.FinishedAt.Sub(st.StartedAt)))
	}
	_ = c.persist() // the exit is known in memory; a full disk must not hang the engine
	c.e.events.publish(c.containerEvent("die", exitCodeAttr(st.ExitCode)))
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
