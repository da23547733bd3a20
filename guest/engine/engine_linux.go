package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/network"
)

// Images is what the engine needs from the image store (*image.Store).
type Images interface {
	// Get returns the stored image ref names; a wrapped image.ErrNotFound
	// when there is none.
	Get(ref string) (*image.Image, error)
	// Pull fetches ref into the store.
	Pull(ctx context.Context, ref string, opts image.PullOptions, progress func(api.PullProgress)) (*image.Image, error)
	// Commit adds an image of a parent and one more layer.
	Commit(opts image.CommitOptions) (*image.Image, error)
}

// Errors the engine's callers map onto Docker's answers. They are wrapped
// with the name the caller used.
var (
	ErrNoSuchContainer = errors.New("no such container")        // 404
	ErrConflict        = errors.New("conflict")                 // 409
	ErrNotRunning      = errors.New("container is not running") // 304 for stop, 409 otherwise
	ErrInvalid         = errors.New("invalid argument")         // 400
	ErrNotFound        = errors.New("not found")                // 404: networks
	ErrForbidden       = errors.New("forbidden")                // 403: the predefined networks
	ErrClosed          = errors.New("engine closed")
)

// Options configure an Engine.
type Options struct {
	// Root is the engine's data directory (containers, logs, state).
	Root string
	// Images is the image store.
	Images Images
	// Pull is the base of the options of the engine's pulls: settings of
	// the engine as a whole (transport, credentials file). Each call's
	// PullOptions add their credentials and insecure registries, and its
	// Platform is replaced by the container's.
	Pull image.PullOptions
	// Networks gives containers Docker's networks, the default bridge
	// when they ask for none in particular. Without it containers get
	// loopback only unless they ask for the host's network.
	Networks *network.Manager
	// Ports publishes containers' ports; without it -p is refused.
	Ports PortPublisher
	// HostAddr is the host as containers reach it: their /etc/hosts
	// names it host.vmbox.internal and host.docker.internal.
	HostAddr netip.Addr
	// ResolvConf is the VM's resolver configuration, which containers
	// not on a user network copy; /etc/resolv.conf when empty.
	ResolvConf string
	// HostFolders, when set, says whether a path is in a host folder
	// shared into the VM: a missing -v bind source is then made only
	// there (on the host, through the share) and refused elsewhere, as a
	// host path the VM cannot see. Without it (the engine on a Linux
	// host) a missing -v source is made where it is, as Docker does.
	HostFolders func(path string) bool
	// Runtime configures the container runtime. Its CgroupParent defaults
	// to "vmbox"; one engine owns its cgroup parent.
	Runtime container.Options
}

// Engine runs containers. It is safe for concurrent use.
type Engine struct {
	opts   Options
	rt     *container.Runtime
	lock   *os.File // flock on Root: one engine per data directory
	dirs   string   // Root/containers
	trash  string   // Root/trash: removed containers' directories on their way out
	bg     background
	closed chan struct{}

	events *eventBus
	vols   *volumeStore

	mu     sync.Mutex
	byID   map[string]*managedContainer
	byName map[string]*managedContainer
}

// New opens the engine on opts.Root, creating it if needed. Containers
// found there from an earlier run are loaded; those that were running are
// recorded as exited (their processes and cgroups are gone or are removed
// now), and those created with AutoRemove are removed.
func New(opts Options) (*Engine, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("%w: no data directory", ErrInvalid)
	}
	if opts.Images == nil {
		return nil, fmt.Errorf("%w: no image store", ErrInvalid)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	opts.Root = root
	e := &Engine{
		opts:   opts,
		dirs:   filepath.Join(root, "containers"),
		trash:  filepath.Join(root, "trash"),
		closed: make(chan struct{}),
		events: newEventBus(),
		vols:   &volumeStore{dir: filepath.Join(root, "volumes")},
		byID:   map[string]*managedContainer{},
		byName: map[string]*managedContainer{},
	}
	for _, d := range []string{e.dirs, e.trash, e.vols.dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("engine data directory: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("engine data directory %s is in use by another engine: %w", root, err)
	}
	e.lock = lock
	fail := func(err error) (*Engine, error) {
		if e.rt != nil {
			e.rt.Close()
		}
		lock.Close()
		return nil, err
	}
	// The runtime kills what earlier runs left in their cgroups.
	if e.rt, err = container.New(opts.Runtime); err != nil {
		return fail(err)
	}
	e.emptyTrash()
	e.unmountLeftovers()
	wasRunning, err := e.load()
	if err != nil {
		return fail(err)
	}
	e.restartOnOpen(wasRunning)
	return e, nil
}

// Close kills the running containers, waits for their state to be
// recorded and for removals in progress, and releases the data directory.
func (e *Engine) Close() error {
	select {
	case <-e.closed:
		return nil
	default:
	}
	e.mu.Lock()
	close(e.closed)
	e.mu.Unlock()
	// A Start that raced with the close kills its own container (it checks
	// e.closed after recording the run); loop until none runs.
	for {
		e.mu.Lock()
		var all []*managedContainer
		for _, c := range e.byID {
			all = append(all, c)
		}
		e.mu.Unlock()
		killed := 0
		for _, c := range all {
			c.mu.Lock()
			rc, done := c.rc, c.monitorDone
			c.mu.Unlock()
			if rc != nil {
				_ = rc.Signal(syscall.SIGKILL)
				<-done
				killed++
			}
		}
		if killed == 0 {
			break
		}
	}
	e.bg.Wait()
	err := e.rt.Close()
	e.emptyTrash()
	e.lock.Close()
	return err
}

// Idle waits until the work the engine does in the background is finished:
// removed containers' directories are gone and the runtime's next warm
// helper is ready.
func (e *Engine) Idle() {
	e.bg.Wait()
	e.rt.Settle()
}

// background counts work running behind the callers' backs. Unlike a
// WaitGroup it may gain work while someone waits for it to be done.
type background struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
}

func (b *background) Add(n int) {
	b.mu.Lock()
	b.n += n
	b.mu.Unlock()
}

func (b *background) Done() {
	b.mu.Lock()
	b.n--
	if b.n == 0 && b.cond != nil {
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// Wait returns once no work is running.
func (b *background) Wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cond == nil {
		b.cond = sync.NewCond(&b.mu)
	}
	for b.n > 0 {
		b.cond.Wait()
	}
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// newID returns a 64-hex-digit container ID that is not in use and whose
// 12-digit short form is unique too (it names the container's hostname).
func (e *Engine) newID() string {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		id := hex.EncodeToString(b[:])
		if _, ok := e.byID[id]; ok {
			continue
		}
		if len(e.matchPrefix(id[:12])) > 0 {
			continue
		}
		return id
	}
}

func (e *Engine) matchPrefix(p string) []*managedContainer {
	var out []*managedContainer
	for id, c := range e.byID {
		if strings.HasPrefix(id, p) {
			out = append(out, c)
		}
	}
	return out
}

// lookup finds a container by full ID, name or unique ID prefix, as Docker
// does.
func (e *Engine) lookup(ref string) (*managedContainer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lookupLocked(ref)
}

func (e *Engine) lookupLocked(ref string) (*managedContainer, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty name", ErrNoSuchContainer)
	}
	if c, ok := e.byID[ref]; ok {
		return c, nil
	}
	if c, ok := e.byName[strings.TrimPrefix(ref, "/")]; ok {
		return c, nil
	}
	if isHex(ref) {
		switch m := e.matchPrefix(ref); len(m) {
		case 1:
			return m[0], nil
		case 0:
		default:
			return nil, fmt.Errorf("%w: multiple containers match %q", ErrInvalid, ref)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoSuchContainer, ref)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// InUse reports whether a container (in any state) uses the image: the
// image store's Remove asks before deleting one.
func (e *Engine) InUse(imageID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.byID {
		if c.rec.ImageID == imageID {
			return true
		}
	}
	return false
}

// emptyTrash removes what earlier removals left in the trash.
func (e *Engine) emptyTrash() {
	ents, _ := os.ReadDir(e.trash)
	for _, ent := range ents {
		os.RemoveAll(filepath.Join(e.trash, ent.Name()))
	}
}

// unmountLeftovers detaches mounts under the data directory in this mount
// namespace. Containers mount only inside their own namespaces, which die
// with them, so there are none unless something else made them; a crash
// must not leave the directory unremovable all the same.
func (e *Engine) unmountLeftovers() {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var targets []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), e.opts.Root+"/") {
			targets = append(targets, unescapeMount(f[4]))
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		_ = unix.Unmount(t, unix.MNT_DETACH)
	}
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// MountsChanged tells the engine that the VM's mount table has changed (a
// host folder was mounted), so that containers started from now on see
// the new mounts in their bind sources.
func (e *Engine) MountsChanged() { e.rt.MountsChanged() }
