package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

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
	c.mu.Lock()
	e.events.publish(c.containerEvent("destroy", nil))
	c.mu.Unlock()
	if c.removeVolumes || c.rec.Config.AutoRemove {
		// The container has left byID: its volumes are free now. Before
		// removed is closed, so that whoever waits for the removal finds
		// them gone too.
		e.removeAnonymousVolumes(c.rec.Mounts)
	}
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
	return e.RemoveWith(ctx, ref, RemoveOptions{Force: force})
}

// RemoveOptions say how Remove works: Force kills a running container;
// Volumes takes its anonymous volumes along (rm -v).
type RemoveOptions struct {
	Force, Volumes bool
}

// RemoveWith is Remove with options.
func (e *Engine) RemoveWith(ctx context.Context, ref string, opts RemoveOptions) error {
	force := opts.Force
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.removing {
		c.mu.Unlock()
		return fmt.Errorf("%w: removal of container %s is already in progress", ErrConflict, ref)
	}
	if c.mountedFS > 0 {
		c.mu.Unlock()
		return fmt.Errorf("%w: files are being copied into or out of container %s", ErrConflict, ref)
	}
	if c.rc != nil {
		if !force {
			c.mu.Unlock()
			return fmt.Errorf("%w: cannot remove running container %s: stop it first or use force", ErrConflict, ref)
		}
		rc, done := c.rc, c.monitorDone
		c.removing, c.removeVolumes = true, opts.Volumes // the monitor must not remove it too
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
	if c.restartCancel != nil {
		if !force {
			c.mu.Unlock()
			return fmt.Errorf("%w: you cannot remove a restarting container %s: stop the container before attempting removal or force remove", ErrConflict, ref)
		}
		c.cancelRestart()
	}
	c.removing, c.removeVolumes = true, opts.Volumes
	c.mu.Unlock()
	e.remove(c)
	return nil
}
