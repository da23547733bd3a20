package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/internal/signals"
)

// Stop sends SIGTERM and, if the container has not exited after timeout
// (negative: 10 s), SIGKILL. A container that is not running gives
// ErrNotRunning; one whose restart is pending stays exited. Either way
// its restart policy no longer starts it, until it is started by hand.
func (e *Engine) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.thawLocked()
	r := c.current()
	restarting := c.restartCancel != nil
	if r != nil || restarting {
		c.rec.ManuallyStopped = true
		c.cancelRestart()
	}
	if restarting {
		_ = c.persist()
	}
	c.mu.Unlock()
	if restarting {
		return nil
	}
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, ref)
	}
	if timeout < 0 {
		timeout = 10 * time.Second
	}
	defer func() {
		select {
		case <-r.exited:
			c.mu.Lock()
			e.events.publish(c.containerEvent("stop", nil))
			c.mu.Unlock()
		default:
		}
	}()
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
		n, err := signals.Parse(signal)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		sig = syscall.Signal(n)
	}
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.thawLocked()
	r := c.current()
	if r == nil && c.restartCancel != nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: container %s is restarting, wait until the container is running", ErrConflict, ref)
	}
	if r != nil {
		c.rec.ManuallyStopped = true // as Docker's kill, whatever the signal
	}
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
	c.mu.Lock()
	e.events.publish(c.containerEvent("kill", map[string]string{"signal": strconv.Itoa(int(sig))}))
	c.mu.Unlock()
	return nil
}
