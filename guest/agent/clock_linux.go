package agent

import (
	"time"

	"github.com/vmbox/vmbox/guest/boot"
)

// SetClock sets the guest's wall clock for the host process, which pushes
// its own time when the guest's has drifted (after the host slept, or the VM
// was paused). Outside the VM (local mode) boot refuses.
func (a *Agent) SetClock(t time.Time) error { return boot.SetClock(t) }
