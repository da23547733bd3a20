package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/network"
)

// openEngine opens the image store and the container engine on dataDir
// and makes them serve the container operations. It returns what closes
// them.
func (a *Agent) openEngine(ctx context.Context, dataDir string, net engineNetwork) (func(), error) {
	ready := make(chan struct{})
	ops := &containerOps{ready: ready, openErr: new(error)}
	closeFn, err := ops.open(dataDir, net)
	close(ready)
	if err != nil {
		return nil, err
	}
	a.Containers = ops
	return closeFn, nil
}

// openGuestEngine opens the engine once after is closed (the host process
// has finished the start, so that opening competes with neither the SSH
// handshake nor the folders' mounts, and containers restarted by their
// policy find their host folders mounted) and the data disk is mounted,
// without holding up the operations that do not need it.
func (a *Agent) openGuestEngine(ctx context.Context, sys *boot.System, ports engine.PortPublisher, folders *hostFolders, after <-chan struct{}) (func(), error) {
	ready := make(chan struct{})
	ops := &containerOps{ready: ready, openErr: new(error)}
	a.Containers = ops
	folders.mounted = ops.mountsChanged
	closed := make(chan func(), 1)
	// stopping is closed at shutdown: an engine not yet open stays closed,
	// rather than opening (and starting containers) while the VM powers off.
	stopping := make(chan struct{})
	// The Docker API's socket listens from the start, so that a client
	// that connects while the engine opens waits rather than failing.
	dockerLn, err := listenUnix(api.DockerSocket)
	if err != nil {
		a.Log.Error("docker api socket", "err", err)
	}
	go func() {
		defer close(ready)
		// closeFn is what the shutdown calls: nothing unless the engine
		// opened. Every way out hands it over, and without an engine the
		// clients waiting in the Docker API's backlog are told at once
		// (their connection ends).
		closeFn := func() {}
		defer func() {
			if *ops.openErr != nil && dockerLn != nil {
				dockerLn.Close()
			}
			closed <- closeFn
		}()
		stopped := func() bool {
			select {
			case <-stopping:
				*ops.openErr = errShuttingDown
				return true
			default:
				return false
			}
		}
		select {
		case <-after:
		case <-ctx.Done():
		case <-stopping:
		}
		if stopped() {
			return
		}
		if _, err := sys.WaitDataDisk(ctx); err != nil {
			*ops.openErr = fmt.Errorf("data disk: %w", err)
			return
		}
		// Pulls need the network; it is static or a quick DHCP lease, so
		// waiting here costs little and spares every pull its own wait.
		st, err := sys.WaitNetwork(ctx)
		if err != nil {
			a.Log.Warn("network", "err", err)
		}
		// The VM's own temporary files go to the data disk: /tmp may be the
		// host's, shared.
		if err := os.MkdirAll(os.Getenv("TMPDIR"), 0o1777); err != nil {
			a.Log.Warn("temporary directory", "err", err)
		}
		if err := sys.Modules.EnsureModule(ctx, "overlay"); err != nil {
			*ops.openErr = fmt.Errorf("overlay module: %w", err)
			return
		}
		if stopped() {
			return
		}
		fn, err := ops.open(vmconfig.DataMountPoint, engineNetwork{
			containers: true, hostAddr: st.Gateway, ports: ports, loadModule: sys.Modules.EnsureModule,
			hostFolders: folders.Covers,
		})
		*ops.openErr = err
		if fn != nil {
			closeFn = fn
		}
		if err == nil && dockerLn != nil {
			a.serveDockerAPI(ctx, ops, dockerLn, vmconfig.DataMountPoint)
		}
	}()
	return sync.OnceFunc(func() {
		close(stopping)
		// An opening under way finishes first (bounded), so that what it
		// started is closed before the VM powers off.
		t := time.NewTimer(engineOpenWait)
		defer t.Stop()
		select {
		case fn := <-closed:
			fn()
		case <-t.C:
			a.Log.Warn("the container engine was still opening at shutdown", "waited", engineOpenWait)
		}
	}), nil
}

// engineOpenWait bounds how long a shutdown waits for an engine that is
// opening.
const engineOpenWait = 10 * time.Second

// errShuttingDown is why the engine did not open when the VM began to
// shut down before it could.
var errShuttingDown = errors.New("the VM is shutting down")

// engineNetwork is how the engine's containers are networked.
type engineNetwork struct {
	// containers gives containers Docker's networks (a bridge by
	// default); without it they get loopback only unless they ask for
	// the host's network.
	containers bool
	hostAddr   netip.Addr
	ports      engine.PortPublisher
	loadModule func(ctx context.Context, name string) error
	// hostFolders says whether a path is in a host folder mounted in the
	// VM (engine.Options.HostFolders); nil on a Linux host.
	hostFolders func(path string) bool
}

func (o *containerOps) open(dataDir string, net engineNetwork) (func(), error) {
	images, err := image.Open(filepath.Join(dataDir, "images"))
	if err != nil {
		return nil, err
	}
	opts := engine.Options{Root: filepath.Join(dataDir, "engine"), Images: images, Ports: net.ports, HostAddr: net.hostAddr, HostFolders: net.hostFolders}
	var networks *network.Manager
	if net.containers {
		networks, err = network.New(context.Background(), network.Options{
			Root: filepath.Join(dataDir, "networks"), HostAddr: net.hostAddr, LoadModule: net.loadModule,
		})
		if err != nil {
			images.Close()
			return nil, fmt.Errorf("networks: %w", err)
		}
		opts.Networks = networks
	}
	eng, err := engine.New(opts)
	if err != nil {
		if networks != nil {
			networks.Close()
		}
		images.Close()
		return nil, err
	}
	o.eng, o.images = eng, images
	return func() {
		eng.Close()
		if networks != nil {
			networks.Close()
		}
		images.Close()
	}, nil
}
