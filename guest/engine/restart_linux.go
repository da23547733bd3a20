package engine

import (
	"context"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// Docker's restart back-off: the first restart after 100 ms, each one in
// a row twice as late, at most a minute; a run that lasted restartReset
// starts the doubling over.
const (
	restartFirstDelay = 100 * time.Millisecond
	restartMaxDelay   = time.Minute
	restartReset      = 10 * time.Second
)

// shouldRestart tells whether p starts a container again after a run that
// ended with code, restartCount restarts after its last start by hand.
func shouldRestart(p api.RestartPolicy, code int, manuallyStopped bool, restartCount int) bool {
	if manuallyStopped {
		return false
	}
	switch p.Name {
	case api.RestartAlways, api.RestartUnlessStopped:
		return true
	case api.RestartOnFailure:
		return code != 0 && (p.MaximumRetryCount == 0 || restartCount < p.MaximumRetryCount)
	}
	return false
}

// startsWithEngine tells whether p starts a container when the engine
// opens, as Docker's daemon does at its start: always, unless-stopped
// unless stopped by hand, and on-failure for a container the engine's end
// interrupted (which counts as a failure).
func startsWithEngine(p api.RestartPolicy, wasRunning, manuallyStopped bool, restartCount int) bool {
	switch p.Name {
	case api.RestartAlways:
		return true
	case api.RestartUnlessStopped:
		return !manuallyStopped
	case api.RestartOnFailure:
		return wasRunning && !manuallyStopped && (p.MaximumRetryCount == 0 || restartCount < p.MaximumRetryCount)
	}
	return false
}

// nextRestartDelay is the delay before the next restart, after one of
// prev (0: none yet) and a run that lasted ran.
func nextRestartDelay(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= restartReset {
		return restartFirstDelay
	}
	return min(2*prev, restartMaxDelay)
}

// scheduleRestart shows c as restarting and starts it again after delay,
// unless cancelRestart, the engine's close or a removal comes first. Call
// with c.mu held.
func (c *managedContainer) scheduleRestart(delay time.Duration) {
	c.restartDelay = delay
	c.rec.State.Status, c.rec.State.Restarting = statusRestarting, true
	cancel := make(chan struct{})
	c.restartCancel = cancel
	c.e.bg.Add(1)
	go func() {
		defer c.e.bg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cancel:
			return
		case <-c.e.closed:
			return
		}
		c.mu.Lock()
		if c.restartCancel != cancel || c.removing {
			c.mu.Unlock()
			return
		}
		c.restartCancel = nil
		c.rec.RestartCount++
		c.mu.Unlock()
		if err := c.e.start(context.Background(), c); err != nil {
			c.mu.Lock()
			c.rec.State.Status, c.rec.State.Restarting = statusExited, false
			if !c.removing && !c.e.isClosed() && c.rc == nil &&
				shouldRestart(c.rec.Config.RestartPolicy, c.rec.State.ExitCode, c.rec.ManuallyStopped, c.rec.RestartCount) {
				c.scheduleRestart(nextRestartDelay(c.restartDelay, 0))
			}
			_ = c.persist()
			c.mu.Unlock()
		}
	}()
}

// cancelRestart ends a pending restart, leaving the container exited.
// Call with c.mu held.
func (c *managedContainer) cancelRestart() {
	if c.restartCancel == nil {
		return
	}
	close(c.restartCancel)
	c.restartCancel = nil
	c.rec.State.Status, c.rec.State.Restarting = statusExited, false
}

// restartOnOpen schedules the containers whose policy starts them with the
// engine. wasRunning names those the engine's end interrupted.
func (e *Engine) restartOnOpen(wasRunning map[string]bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, c := range e.byID {
		c.mu.Lock()
		if startsWithEngine(c.rec.Config.RestartPolicy, wasRunning[id], c.rec.ManuallyStopped, c.rec.RestartCount) {
			c.scheduleRestart(0)
		}
		c.mu.Unlock()
	}
}
