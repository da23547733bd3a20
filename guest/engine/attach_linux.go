package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/vmbox/vmbox/guest/api"
)

// Streams connect a client to a container's or an exec's process. Any may
// be nil. Stdin is read until EOF (then the process's stdin is closed,
// unless it is a terminal); with a terminal all output goes to Stdout.
type Streams struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Resize  <-chan api.TermSize
	Signals <-chan syscall.Signal
}

// Resize sets the terminal size of a running container started with Tty.
func (e *Engine) Resize(ref string, size api.TermSize) error {
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
	return rc.Resize(size)
}

// Attach connects streams to the container's next (or current) run and
// returns when that run's output has all been delivered, a write to the
// client failed, or ctx ends. Attaching before Start loses no output.
func (e *Engine) Attach(ctx context.Context, ref string, s Streams) error {
	serve, err := e.AttachNow(ref, s)
	if err != nil {
		return err
	}
	return serve(ctx)
}

// AttachNow registers the attachment before it returns (from then on no
// output of the run is lost) and returns what serves it, as Attach does:
// for a client that must answer before it serves the streams (the Docker
// API's upgrade to a raw stream).
func (e *Engine) AttachNow(ref string, s Streams) (serve func(context.Context) error, err error) {
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
					_ = r.rc.Resize(sz)
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
