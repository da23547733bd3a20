package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

// record is a container's persisted configuration and state.
type record struct {
	ID      string              `json:"id"`
	Name    string              `json:"name"`
	Created time.Time           `json:"created"`
	Config  api.ContainerConfig `json:"config"` // as the user asked
	ImageID string              `json:"imageId"`
	Layers  []string            `json:"layers"`
	// The effective process, from the image and the user's overrides.
	Path       string    `json:"path"`
	Args       []string  `json:"args"`
	Entrypoint []string  `json:"entrypoint,omitempty"`
	Cmd        []string  `json:"cmd,omitempty"`
	Env        []string  `json:"env"`
	WorkingDir string    `json:"workingDir,omitempty"`
	User       string    `json:"user,omitempty"`
	Hostname   string    `json:"hostname"`
	State      api.State `json:"state"`
	// Networks are the networks the container joins at start; the first
	// carries its default route and published ports.
	Networks []netAttachment `json:"networks,omitempty"`
	// Mounts are the container's volumes (by name) and bind mounts,
	// resolved at create, parents before what they hold.
	Mounts []api.Mount `json:"mounts,omitempty"`
	// NetworksCleared: the container left its last network (disconnect)
	// and may join one again, unlike one created with --network none.
	NetworksCleared bool `json:"networksCleared,omitempty"`
	// ImageExposedPorts are the image's EXPOSE entries ("80/tcp").
	ImageExposedPorts []string `json:"imageExposedPorts,omitempty"`
	// RestartCount counts the restart policy's starts since the last start
	// by hand; ManuallyStopped is set by stop and kill and cleared by a
	// start by hand (Docker's HasBeenManuallyStopped).
	RestartCount    int  `json:"restartCount,omitempty"`
	ManuallyStopped bool `json:"manuallyStopped,omitempty"`
}

const (
	stateFile     = "state.json"
	fsDir         = "fs" // the runtime's directory: overlay upper, work, mount point
	statusCreated = "created"
	statusRunning = "running"
	statusPaused  = "paused"
	statusExited  = "exited"
	// statusRestarting: exited, and the restart policy starts it again
	// after a delay.
	statusRestarting = "restarting"
)

// managedContainer is one container the engine keeps. mu guards rec and the run fields; outMu
// orders its output: log file writes, attached clients and log followers.
type managedContainer struct {
	e   *Engine
	dir string

	mu  sync.Mutex
	rec record
	rc  *container.Container // set while running
	cur *run                 // set while running
	log *logWriter           // set while running
	net *netSetup            // set while running
	// next is the run the next Start makes: Wait("next-exit") and Attach
	// before a start wait on it.
	next *run
	// monitorDone is closed when the current run's exit is recorded.
	monitorDone chan struct{}
	removed     chan struct{}
	removing    bool
	// mountedFS counts the users of the root filesystem mounted outside
	// the container (Filesystem): it may not start meanwhile.
	mountedFS int
	// removeVolumes: the removal in progress takes the anonymous volumes
	// along (rm -v).
	removeVolumes bool
	// restartCancel, while a restart is pending, cancels it when closed;
	// restartDelay is the last restart's delay, which the next doubles.
	restartCancel chan struct{}
	restartDelay  time.Duration

	outMu     sync.Mutex
	attached  map[*attachment]struct{}
	followers map[*follower]struct{}
}

func newContainer(e *Engine, rec record) *managedContainer {
	return &managedContainer{
		e:         e,
		dir:       filepath.Join(e.dirs, rec.ID),
		rec:       rec,
		next:      newRun(),
		removed:   make(chan struct{}),
		attached:  map[*attachment]struct{}{},
		followers: map[*follower]struct{}{},
	}
}

func (c *managedContainer) logPath() string { return filepath.Join(c.dir, c.rec.ID+"-json.log") }

// persist writes the record atomically (write, fsync, rename, fsync the
// directory). Containers with AutoRemove are not persisted: after a
// restart they would be removed anyway, so their start does not pay for
// the disk flushes. Call with c.mu held.
func (c *managedContainer) persist() error {
	if c.rec.Config.AutoRemove {
		return nil
	}
	b, err := json.Marshal(&c.rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.dir, stateFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("save container state: %w", err)
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(c.dir, stateFile))
	}
	if err == nil {
		err = syncDir(c.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save container state: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads the containers of an earlier run and returns the IDs of
// those it interrupted.
func (e *Engine) load() (wasRunning map[string]bool, err error) {
	ents, err := os.ReadDir(e.dirs)
	if err != nil {
		return nil, err
	}
	wasRunning = map[string]bool{}
	for _, ent := range ents {
		dir := filepath.Join(e.dirs, ent.Name())
		b, err := os.ReadFile(filepath.Join(dir, stateFile))
		var rec record
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil || rec.ID != ent.Name() || rec.Config.AutoRemove {
			// A create that did not finish, or an AutoRemove container
			// (never persisted): nothing a user keeps.
			if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove leftover container %s: %w", ent.Name(), err)
			}
			continue
		}
		c := newContainer(e, rec)
		switch {
		case rec.State.Status == statusRunning || rec.State.Status == statusPaused || rec.State.Running:
			// Its processes died with the engine (or were killed by the
			// runtime just now), without an exit status.
			wasRunning[rec.ID] = true
			c.rec.State.Status = statusExited
			c.rec.State.Running, c.rec.State.Paused = false, false
			c.rec.State.Pid = 0
			c.rec.State.ExitCode = 255
			c.rec.State.Error = "the engine stopped while the container was running"
			c.rec.State.FinishedAt = time.Now().UTC()
			if err := c.persist(); err != nil {
				return nil, err
			}
		case rec.State.Status == statusRestarting || rec.State.Restarting:
			// Its restart was pending: the policy decides again.
			wasRunning[rec.ID] = true
			c.rec.State.Status, c.rec.State.Restarting = statusExited, false
		}
		e.byID[rec.ID] = c
		e.byName[rec.Name] = c
	}
	return wasRunning, nil
}
