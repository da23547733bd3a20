package engine

import (
	"context"
	"fmt"

	"github.com/vmbox/vmbox/guest/api"
)

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
