package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
)

// openEngine opens the image store and the container engine on dataDir
// and makes them serve the container operations. It returns what closes
// them.
func (a *Agent) openEngine(ctx context.Context, dataDir string) (func(), error) {
	ready := make(chan struct{})
	ops := &containerOps{ready: ready, openErr: new(error)}
	closeFn, err := ops.open(dataDir)
	close(ready)
	if err != nil {
		return nil, err
	}
	a.Containers = ops
	return closeFn, nil
}

// openGuestEngine opens the engine once the data disk is mounted, without
// holding up the operations that do not need it.
func (a *Agent) openGuestEngine(ctx context.Context, sys *boot.System) (func(), error) {
	ready := make(chan struct{})
	ops := &containerOps{ready: ready, openErr: new(error)}
	a.Containers = ops
	closed := make(chan func(), 1)
	go func() {
		defer close(ready)
		if _, err := sys.WaitDataDisk(ctx); err != nil {
			*ops.openErr = fmt.Errorf("data disk: %w", err)
			closed <- func() {}
			return
		}
		// Pulls need the network; it is static or a quick DHCP lease, so
		// waiting here costs little and spares every pull its own wait.
		if _, err := sys.WaitNetwork(ctx); err != nil {
			a.Log.Warn("network", "err", err)
		}
		if err := sys.Modules.EnsureModule(ctx, "overlay"); err != nil {
			*ops.openErr = fmt.Errorf("overlay module: %w", err)
			closed <- func() {}
			return
		}
		fn, err := ops.open(vmconfig.DataMountPoint)
		*ops.openErr = err
		if fn == nil {
			fn = func() {}
		}
		closed <- fn
	}()
	return func() {
		select {
		case fn := <-closed:
			fn()
		default:
		}
	}, nil
}

func (o *containerOps) open(dataDir string) (func(), error) {
	images, err := image.Open(filepath.Join(dataDir, "images"))
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{Root: filepath.Join(dataDir, "engine"), Images: images})
	if err != nil {
		images.Close()
		return nil, err
	}
	o.eng, o.images = eng, images
	return func() {
		eng.Close()
		images.Close()
	}, nil
}
