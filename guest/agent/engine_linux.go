package agent

import (
	"context"

	"github.com/vmbox/vmbox/guest/boot"
)

// openEngine opens the container engine on dataDir and makes it serve the
// container operations. It returns what closes it.
func (a *Agent) openEngine(ctx context.Context, dataDir string) (func(), error) {
	// The engine lands with the container issue; until then the agent
	// serves only its own operations.
	return func() {}, nil
}

// openGuestEngine opens the engine on the data disk once it is mounted.
func (a *Agent) openGuestEngine(ctx context.Context, sys *boot.System) (func(), error) {
	return func() {}, nil
}
