package container

import (
	"errors"
	"os"
	"sync"
)

// Options configure a Runtime.
type Options struct {
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which container cgroups are made. Default "vmbox".
	CgroupParent string
	// CgroupMode is "v1" or "v2"; empty detects it (cgroups.Mode).
	CgroupMode string
	// CgroupRoot is where the hierarchies are mounted; default /sys/fs/cgroup.
	CgroupRoot string
	// Cold disables the warm helper: every start pays a re-exec.
	Cold bool
	// Trace makes the inits report the time spent per set-up step on the
	// program's stderr.
	Trace bool
}

// Runtime starts containers. It is safe for concurrent use.
type Runtime struct {
	opts    Options
	cg      cgroupDriver
	devnull *os.File
	pool    *pool
	spawnCh chan spawnReq
	spawnWG sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	spawning sync.WaitGroup // requests on their way to spawnCh
}

// New returns a Runtime. It starts warming a helper in the background.
//
// One Runtime owns its cgroup parent: New kills whatever processes are left
// in cgroups under it (from a previous run of the program, which is gone)
// and removes those cgroups.
func New(opts Options) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the container runtime must run as root")
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = "vmbox"
	}
	cg, err := newCgroupDriver(opts.CgroupMode, opts.CgroupRoot, opts.CgroupParent)
	if err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	r := &Runtime{opts: opts, cg: cg, devnull: devnull, spawnCh: make(chan spawnReq)}
	if err := r.removeStale(); err != nil {
		devnull.Close()
		return nil, err
	}
	r.spawnWG.Add(1)
	go r.spawnLoop()
	r.pool = newPool(r, !opts.Cold)
	r.pool.warm(false)
	return r, nil
}

// MountsChanged tells the runtime that the mount table it starts
// containers from has changed (a host folder was mounted): containers
// started from now on see the new mounts.
func (r *Runtime) MountsChanged() { r.pool.drain() }

// Close stops the warm helpers. Running containers are not touched.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.pool.close()
	r.spawning.Wait()
	close(r.spawnCh)
	r.spawnWG.Wait()
	return r.devnull.Close()
}

// Settle waits until no warm helper is being started: every process and
// cgroup the runtime has then belongs to a container or to a ready helper.
func (r *Runtime) Settle() { r.pool.settle() }

// Cgroups lists the cgroups that exist under the runtime's cgroup parent:
// one per running container and one per warm helper.
func (r *Runtime) Cgroups() ([]string, error) { return r.cg.list() }
