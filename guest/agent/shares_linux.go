package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/share"
)

// hostFolders are the host folders mounted in the VM, by their path there.
type hostFolders struct {
	log        *slog.Logger
	loadModule func(ctx context.Context, name string) error
	// mounted is called after each mount: containers' namespaces are
	// copies of the VM's, made ahead of time.
	mounted func()

	mu     sync.Mutex
	mounts map[string]*hostFolder
}

type hostFolder struct {
	m      *share.Mount
	events chan api.ShareEvent
}

// replayBacklog is how many host changes may wait for their replay; more
// (a checkout of thousands of files) are dropped, since a watcher
// rescans after a burst anyway.
const replayBacklog = 4096

func newHostFolders(log *slog.Logger, loadModule func(ctx context.Context, name string) error) *hostFolders {
	return &hostFolders{log: log, loadModule: loadModule, mounts: make(map[string]*hostFolder)}
}

// Mount mounts sh, replacing a mount of the same path (left by a host
// process that went away), until ch closes.
func (h *hostFolders) Mount(ctx context.Context, sh api.Share, ch io.ReadWriteCloser) error {
	if err := h.loadModule(ctx, "fuse"); err != nil {
		ch.Close()
		return fmt.Errorf("fuse module: %w", err)
	}
	if sh.Tag != "" {
		if err := h.loadModule(ctx, "virtiofs"); err != nil {
			// The channel alone serves the folder, only slower.
			h.log.Warn("host folder's virtiofs device not used", "path", sh.GuestPath, "err", err)
			sh.Tag = ""
		}
	}
	h.mu.Lock()
	if old := h.mounts[sh.GuestPath]; old != nil {
		old.m.Close()
	}
	h.mu.Unlock()
	m, err := share.New(ch, sh, h.log)
	if err != nil {
		return err
	}
	f := &hostFolder{m: m, events: make(chan api.ShareEvent, replayBacklog)}
	h.mu.Lock()
	h.mounts[sh.GuestPath] = f
	h.mu.Unlock()
	h.log.Info("host folder mounted", "host", sh.HostPath, "path", sh.GuestPath, "readOnly", sh.ReadOnly, "virtiofs", m.Direct())
	if h.mounted != nil {
		h.mounted()
	}
	rctx, cancel := context.WithCancel(ctx)
	go m.Replay(rctx, f.events)
	go func() {
		m.Wait()
		cancel()
		h.mu.Lock()
		if h.mounts[sh.GuestPath] == f {
			delete(h.mounts, sh.GuestPath)
		}
		h.mu.Unlock()
		h.log.Info("host folder unmounted", "path", sh.GuestPath)
	}()
	return nil
}

// Replay queues the host's changes for their shares' replay.
func (h *hostFolders) Replay(evs []api.ShareEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		f := h.mounts[ev.GuestPath]
		if f == nil {
			continue
		}
		select {
		case f.events <- ev:
		default:
			h.log.Debug("host change dropped: replay backlog full", "share", ev.GuestPath, "path", ev.Path)
		}
	}
}

// Covers says whether the VM path p is in a mounted host folder.
func (h *hostFolders) Covers(p string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for gp := range h.mounts {
		if api.ShareCovers(gp, p) {
			return true
		}
	}
	return false
}

// Close unmounts every host folder.
func (h *hostFolders) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.mounts {
		f.m.Close()
	}
}
