//go:build linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ModuleLoader loads kernel modules from a moduleList, each at most once,
// dependencies first. Independent modules load concurrently, at most one per
// online CPU: finit_module is CPU-bound, so on a one-CPU guest (the boot
// runs with maxcpus=1) this degenerates to a serial load, and parallelism
// only appears where it can help. Safe for concurrent use.
type ModuleLoader struct {
	list      *moduleList
	sysModule string                   // /sys/module, for what is already in the kernel
	load      func(kernelModule) error // finit_module; replaced in tests
	timings   *Timings

	mu    sync.Mutex
	state map[string]*moduleState
	sem   chan struct{}
}

type moduleState struct {
	done chan struct{} // closed once err is set
	err  error
}

// newModuleLoader returns a loader for the modules in list that records
// each load in t (which may be nil).
func newModuleLoader(list *moduleList, t *Timings) *ModuleLoader {
	n := runtime.NumCPU()
	if n < 1 {
		n = 1
	}
	return &ModuleLoader{
		list:      list,
		sysModule: "/sys/module",
		load:      finitModule,
		timings:   t,
		state:     map[string]*moduleState{},
		sem:       make(chan struct{}, n),
	}
}

// loadModules loads the named modules and their dependencies and returns
// once all of them are in the kernel (or one failed). A module the kernel
// already has (loaded earlier or built in) counts as loaded.
func (l *ModuleLoader) loadModules(ctx context.Context, names ...string) error {
	mods, err := l.list.Closure(names...)
	if err != nil {
		return err
	}
	states := make([]*moduleState, len(mods))
	l.mu.Lock()
	for i, m := range mods {
		st, ok := l.state[m.Name]
		if !ok {
			st = &moduleState{done: make(chan struct{})}
			l.state[m.Name] = st
			// Dependencies come earlier in mods, so their states exist.
			deps := make([]*moduleState, len(m.Deps))
			for j, d := range m.Deps {
				deps[j] = l.state[d]
			}
			go l.run(m, deps, st)
		}
		states[i] = st
	}
	l.mu.Unlock()

	var errs []error
	for i, st := range states {
		select {
		case <-st.done:
			if st.err != nil {
				errs = append(errs, st.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("load module %s: %w", mods[i].Name, ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// EnsureModule loads one module (and what it needs) if the kernel lacks it.
// A name missing from modules.txt is fine when the kernel already has the
// module (built in), and an error otherwise.
func (l *ModuleLoader) EnsureModule(ctx context.Context, name string) error {
	name = canonicalModuleName(name)
	if _, ok := l.list.Lookup(name); !ok {
		if l.inKernel(name) {
			return nil
		}
		return fmt.Errorf("module %s is neither built into the kernel nor in the module list", name)
	}
	return l.loadModules(ctx, name)
}

// run loads m once its dependencies are loaded. It does not take ctx: a
// module load that has begun is shared by every caller and must finish
// (or fail) for all of them.
func (l *ModuleLoader) run(m kernelModule, deps []*moduleState, st *moduleState) {
	defer close(st.done)
	for _, d := range deps {
		<-d.done
		if d.err != nil {
			st.err = fmt.Errorf("load module %s: dependency failed", m.Name)
			return
		}
	}
	if l.inKernel(m.Name) {
		return
	}
	l.sem <- struct{}{}
	start := time.Now()
	err := l.load(m)
	<-l.sem
	l.timings.Add("module "+m.Name, start)
	if err != nil {
		st.err = fmt.Errorf("load module %s: %w", m.Name, err)
	}
}

// inKernel reports whether the kernel already has the module: a loaded
// module has /sys/module/NAME/initstate "live"; a built-in one with
// parameters has the directory but no initstate. A module still "coming"
// is left to finit_module, which waits for it and answers EEXIST.
func (l *ModuleLoader) inKernel(name string) bool {
	dir := filepath.Join(l.sysModule, name)
	b, err := os.ReadFile(filepath.Join(dir, "initstate"))
	if err == nil {
		return strings.TrimSpace(string(b)) == "live"
	}
	if _, err := os.Stat(dir); err == nil {
		return true
	}
	return false
}

func finitModule(m kernelModule) error {
	fd, err := unix.Open(m.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", m.Path, err)
	}
	defer unix.Close(fd)
	err = unix.FinitModule(fd, "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finit_module %s: %w", m.Path, err)
	}
	return nil
}
