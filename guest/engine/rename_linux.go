package engine

import (
	"fmt"
	"strings"
)

// Rename gives a container a new name. The name its network peers resolve
// changes when it next starts (or connects), as its DNS entries are made
// then.
func (e *Engine) Rename(ref, newName string) error {
	newName = strings.TrimPrefix(newName, "/")
	if !validName.MatchString(newName) {
		return fmt.Errorf("%w: invalid container name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, newName)
	}
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	// The new name is taken first, under the engine's lock alone; the
	// record changes under the container's (never both held at once).
	e.mu.Lock()
	if other, ok := e.byName[newName]; ok {
		e.mu.Unlock()
		if other == c {
			return fmt.Errorf("%w: renaming a container with the same name as its current name", ErrInvalid)
		}
		return fmt.Errorf("%w: the container name %q is already in use by container %q", ErrConflict, "/"+newName, other.rec.ID)
	}
	e.byName[newName] = c
	e.mu.Unlock()
	c.mu.Lock()
	old := c.rec.Name
	c.rec.Name = newName
	err = c.persist()
	if err != nil {
		c.rec.Name = old
	} else {
		e.events.publish(c.containerEvent("rename", map[string]string{"oldName": "/" + old}))
	}
	c.mu.Unlock()
	e.mu.Lock()
	if err != nil {
		delete(e.byName, newName)
	} else if e.byName[old] == c {
		delete(e.byName, old)
	}
	e.mu.Unlock()
	return err
}
