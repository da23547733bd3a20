package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

// Exec runs a command in a running container with the streams attached and
// returns its exit code. A command that cannot run gives 126 or 127 along
// with the error, as Docker reports them.
func (e *Engine) Exec(ctx context.Context, args api.ExecArgs, s Streams) (int, error) {
	if len(args.Cmd) == 0 {
		return container.ExitEngineError, fmt.Errorf("%w: no command specified", ErrInvalid)
	}
	c, err := e.lookup(args.Container)
	if err != nil {
		return container.ExitEngineError, err
	}
	c.mu.Lock()
	if c.rec.State.Paused {
		c.mu.Unlock()
		return container.ExitEngineError, fmt.Errorf("%w: container %s is paused, unpause the container before exec", ErrConflict, args.Container)
	}
	rc := c.rc
	spec := &container.ExecSpec{
		Args:        args.Cmd,
		Env:         container.MergeEnv(c.rec.Env, args.Env),
		User:        c.rec.User,
		WorkingDir:  c.rec.WorkingDir,
		Tty:         args.Tty,
		ConsoleSize: api.ConsoleTermSize(args.ConsoleSize),
		OpenStdin:   args.OpenStdin && s.Stdin != nil,
		Privileged:  args.Privileged || c.rec.Config.Privileged,
	}
	c.mu.Unlock()
	if rc == nil {
		return container.ExitEngineError, fmt.Errorf("%w: %s", ErrNotRunning, args.Container)
	}
	if args.User != "" {
		spec.User = args.User
	}
	if args.WorkingDir != "" {
		spec.WorkingDir = args.WorkingDir
	}
	p, err := rc.Exec(ctx, spec)
	if err != nil {
		if errors.Is(err, container.ErrNotRunning) {
			return container.ExitEngineError, fmt.Errorf("%w: %s", ErrNotRunning, args.Container)
		}
		return container.ExitCode(err), err
	}
	var wg sync.WaitGroup
	copyOut := func(w io.Writer, r io.ReadCloser) {
		defer wg.Done()
		if w == nil {
			w = io.Discard
		}
		_, _ = io.Copy(w, r)
		r.Close()
	}
	if p.Pty != nil {
		wg.Add(1)
		go copyOut(s.Stdout, p.Pty)
	} else {
		wg.Add(2)
		go copyOut(s.Stdout, p.Stdout)
		go copyOut(s.Stderr, p.Stderr)
	}
	if spec.OpenStdin {
		go func() {
			w := io.Writer(p.Pty)
			if p.Pty == nil {
				w = p.Stdin
			}
			_, _ = io.Copy(w, s.Stdin)
			if p.Pty == nil {
				p.Stdin.Close()
			}
		}()
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case sz, ok := <-s.Resize:
				if !ok {
					s.Resize = nil
					continue
				}
				_ = p.Resize(sz)
			case sig, ok := <-s.Signals:
				if !ok {
					s.Signals = nil
					continue
				}
				_ = p.Signal(sig)
			case <-stop:
				return
			}
		}
	}()
	exit, err := p.Wait()
	wg.Wait()
	if err != nil {
		return container.ExitEngineError, err
	}
	return exit.Code, nil
}
