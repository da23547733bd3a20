package engine

import (
	"errors"
	"fmt"

	"github.com/vmbox/vmbox/guest/container"
)

// Pause freezes every process of a running container (cgroup v2's
// freezer); Unpause lets them go on.
func (e *Engine) Pause(ref string) error { return e.setPaused(ref, true) }

// Unpause resumes a paused container.
func (e *Engine) Unpause(ref string) error { return e.setPaused(ref, false) }

func (e *Engine) setPaused(ref string, paused bool) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rc == nil {
		return fmt.Errorf("%w: container %s is not running", ErrConflict, ref)
	}
	if c.rec.State.Paused == paused {
		if paused {
			return fmt.Errorf("%w: container %s is already paused", ErrConflict, ref)
		}
		return fmt.Errorf("%w: container %s is not paused", ErrConflict, ref)
	}
	if err := c.rc.Freeze(paused); err != nil {
		if errors.Is(err, container.ErrNoFreezer) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return err
	}
	c.rec.State.Paused = paused
	action := "unpause"
	c.rec.State.Status = statusRunning
	if paused {
		action, c.rec.State.Status = "pause", statusPaused
	}
	e.events.publish(c.containerEvent(action, nil))
	return c.persist()
}

// thawLocked resumes a paused container before it is signalled: a
// frozen process takes no signal but SIGKILL. Call with c.mu held.
func (c *managedContainer) thawLocked() {
	if c.rc != nil && c.rec.State.Paused {
		if c.rc.Freeze(false) == nil {
			c.rec.State.Paused, c.rec.State.Status = false, statusRunning
		}
	}
}
