package engine

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container"
)

// Filesystem gives access to a container's root filesystem as its
// processes see it, for copying files in and out (docker cp): a running
// container's through its init's /proc root (its mounts included), a
// stopped one's through its overlay mounted here, which keeps it from
// starting until release is called. Paths under root must be resolved
// with symlinks kept inside it (securejoin).
func (e *Engine) Filesystem(ref string) (root string, release func(), err error) {
	c, err := e.lookup(ref)
	if err != nil {
		return "", nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removing {
		return "", nil, fmt.Errorf("%w: container %s is being removed", ErrConflict, ref)
	}
	if c.rc != nil && c.rec.State.Pid > 0 {
		return "/proc/" + strconv.Itoa(c.rec.State.Pid) + "/root", func() {}, nil
	}
	target, err := os.MkdirTemp(c.dir, "fs-")
	if err != nil {
		return "", nil, fmt.Errorf("mount point: %w", err)
	}
	if err := container.MountRootfs(c.spec(), target); err != nil {
		os.Remove(target)
		return "", nil, fmt.Errorf("mount the container's filesystem: %w", err)
	}
	c.mountedFS++
	return target, func() {
		_ = unix.Unmount(target, unix.MNT_DETACH)
		os.Remove(target)
		c.mu.Lock()
		c.mountedFS--
		c.mu.Unlock()
	}, nil
}
