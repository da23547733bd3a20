package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

// RunResult is the outcome of Run.
type RunResult struct {
	ID string
	// ExitCode is the container's, or 125/126/127 when it could not start.
	ExitCode int
}

// Run is the agent's OpRun, with Docker's `run` semantics: create (pulling
// a missing image with args.Auth and args.InsecureRegistries), attach the
// streams before starting so that no output is lost, start, forward
// signals, wait for the exit and, with AutoRemove, for the removal. With
// Detach it returns once the container has started. A container that could
// not start gives its code in RunResult.ExitCode along with the error.
// progress, which may be nil, receives the pull's progress.
func (e *Engine) Run(ctx context.Context, args api.RunArgs, s Streams, progress func(api.PullProgress)) (RunResult, error) {
	pull := PullOptions{Auth: args.Auth, InsecureRegistries: args.InsecureRegistries, Progress: progress}
	reply, err := e.Create(ctx, args.Config, pull)
	if err != nil {
		return RunResult{ExitCode: container.ExitEngineError}, err
	}
	res := RunResult{ID: reply.ID}
	// A client that goes away before the start leaves no created-but-never-
	// started container behind: run is one operation to the user.
	abandon := func(err error) (RunResult, error) {
		if ctx.Err() != nil {
			e.Remove(context.WithoutCancel(ctx), reply.ID, true)
		}
		res.ExitCode = container.ExitCode(err)
		return res, err
	}
	if ctx.Err() != nil {
		return abandon(ctx.Err())
	}
	if args.Detach {
		if err := e.Start(ctx, reply.ID); err != nil {
			return abandon(err)
		}
		return res, nil
	}
	c, err := e.lookup(reply.ID)
	if err != nil {
		return RunResult{ExitCode: container.ExitEngineError}, err
	}
	a, r := c.attach(s)
	defer c.detach(a)
	if err := e.Start(ctx, reply.ID); err != nil {
		return abandon(err)
	}
	if err := c.follow(ctx, a, r, s); err != nil {
		res.ExitCode = container.ExitEngineError
		return res, err
	}
	select {
	case <-r.exited:
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.ExitCode = r.code
	if c.rec.Config.AutoRemove {
		select {
		case <-c.removed:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	return res, nil
}

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
	rc := c.rc
	spec := &container.ExecSpec{
		Args:        args.Cmd,
		Env:         container.MergeEnv(c.rec.Env, args.Env),
		User:        c.rec.User,
		WorkingDir:  c.rec.WorkingDir,
		Tty:         args.Tty,
		ConsoleSize: args.ConsoleSize,
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
				_ = p.Resize(sz.Rows, sz.Cols)
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

// List returns the containers, newest first; only running ones unless all.
func (e *Engine) List(all bool) []api.ContainerSummary {
	e.mu.Lock()
	cs := make([]*managedContainer, 0, len(e.byID))
	for _, c := range e.byID {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	now := time.Now()
	out := make([]api.ContainerSummary, 0, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		rec := c.rec
		c.mu.Unlock()
		if !all && rec.State.Status != statusRunning {
			continue
		}
		out = append(out, api.ContainerSummary{
			ID:      rec.ID,
			Names:   []string{"/" + rec.Name},
			Image:   rec.Config.Image,
			ImageID: rec.ImageID,
			Command: command(rec.Path, rec.Args),
			Created: rec.Created.Unix(),
			State:   rec.State.Status,
			Status:  statusText(rec.State, now),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// command formats the command as Docker's list does.
func command(path string, args []string) string {
	parts := []string{path}
	for _, a := range args {
		if strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// statusText is Docker's human status: "Up 3 seconds", "Exited (3) 2
// minutes ago", "Created".
func statusText(st api.State, now time.Time) string {
	switch st.Status {
	case statusRunning:
		return "Up " + units.HumanDuration(now.Sub(st.StartedAt))
	case statusExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	}
	return "Created"
}

// Inspect describes a container as Docker's GET /containers/{id}/json does.
func (e *Engine) Inspect(ref string) (api.ContainerInspect, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return api.ContainerInspect{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.rec
	cfg := rec.Config
	cfg.Entrypoint, cfg.Cmd = rec.Entrypoint, rec.Cmd
	cfg.Env, cfg.WorkingDir, cfg.User, cfg.Hostname = rec.Env, rec.WorkingDir, rec.User, rec.Hostname
	return api.ContainerInspect{
		ID:      rec.ID,
		Name:    "/" + rec.Name,
		Created: rec.Created,
		Path:    rec.Path,
		Args:    append([]string{}, rec.Args...),
		State:   rec.State,
		Image:   rec.ImageID,
		Config:  cfg,
		LogPath: c.logPath(),
	}, nil
}

// Logs writes the container's recorded output (the last Tail lines per
// the log, all when negative) to stdout and stderr; with a terminal
// everything is stdout. With Follow it goes on while the container runs.
func (e *Engine) Logs(ctx context.Context, args api.LogsArgs, stdout, stderr io.Writer) error {
	c, err := e.lookup(args.Container)
	if err != nil {
		return err
	}
	// The snapshot of the file and the follower's registration happen
	// under outMu, which the pumps hold while they write: no line is
	// missed or repeated between them.
	c.mu.Lock()
	r := c.current()
	path := c.logPath()
	c.mu.Unlock()
	var f *follower
	c.outMu.Lock()
	entries, err := readLog(path, args.Tail)
	if err == nil && args.Follow && r != nil {
		f = newFollower()
		c.followers[f] = struct{}{}
	}
	c.outMu.Unlock()
	if err != nil {
		return err
	}
	write := func(es []logEntry) error {
		for _, en := range es {
			w := stdout
			if en.Stream == "stderr" {
				w = stderr
			}
			if w == nil {
				continue
			}
			line := en.Log
			if args.Timestamps {
				line = en.Time.Format(time.RFC3339Nano) + " " + line
			}
			if _, err := io.WriteString(w, line); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(entries); err != nil || f == nil {
		if f != nil {
			c.unfollow(f)
		}
		return err
	}
	defer c.unfollow(f)
	go func() {
		select {
		case <-r.drained:
		case <-ctx.Done():
		}
		f.close()
	}()
	for {
		es, ok := f.next()
		if !ok {
			return ctx.Err()
		}
		if err := write(es); err != nil {
			return err
		}
	}
}

func (c *managedContainer) unfollow(f *follower) {
	c.outMu.Lock()
	delete(c.followers, f)
	c.outMu.Unlock()
	f.close()
}

// readLog reads a json-file log, keeping the last tail entries (all when
// tail is negative).
func readLog(path string, tail int) ([]logEntry, error) {
	if tail == 0 {
		return nil, nil
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	defer fh.Close()
	var out []logEntry
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var en logEntry
		if json.Unmarshal(sc.Bytes(), &en) != nil {
			continue // a line cut by a crash
		}
		out = append(out, en)
		if tail > 0 && len(out) > 2*tail {
			out = append(out[:0:0], out[len(out)-tail:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out, nil
}
