package engine

import (
	"context"

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
