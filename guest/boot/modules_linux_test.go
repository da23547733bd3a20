//go:build linux

package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeKernel records module loads and checks that each module's
// dependencies were in the kernel first.
type fakeKernel struct {
	t      *testing.T
	list   *moduleList
	sysMod string
	fail   map[string]bool
	block  chan struct{} // if set, loads wait for it

	mu     sync.Mutex
	loaded map[string]int // load count
	order  []string
}

func (k *fakeKernel) load(m kernelModule) error {
	if k.block != nil {
		<-k.block
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, d := range m.Deps {
		if k.loaded[d] == 0 && !k.preloaded(d) {
			k.t.Errorf("%s loaded before its dependency %s", m.Name, d)
		}
	}
	if k.fail[m.Name] {
		return errors.New("Invalid module format")
	}
	k.loaded[m.Name]++
	k.order = append(k.order, m.Name)
	return nil
}

func (k *fakeKernel) preloaded(name string) bool {
	_, err := os.Stat(filepath.Join(k.sysMod, name))
	return err == nil
}

func newFakeLoader(t *testing.T, parallel int) (*ModuleLoader, *fakeKernel) {
	t.Helper()
	list, err := parseModuleList(strings.NewReader(testModules))
	if err != nil {
		t.Fatal(err)
	}
	sysMod := t.TempDir()
	// virtio_ring is loaded already; "ext4" is built in (no initstate).
	if err := os.MkdirAll(filepath.Join(sysMod, "virtio_ring"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysMod, "virtio_ring", "initstate"), []byte("live\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sysMod, "ext4", "parameters"), 0o755); err != nil {
		t.Fatal(err)
	}
	k := &fakeKernel{t: t, list: list, sysMod: sysMod, fail: map[string]bool{}, loaded: map[string]int{}}
	l := newModuleLoader(list, &Timings{})
	l.sysModule = sysMod
	l.load = k.load
	l.sem = make(chan struct{}, parallel)
	return l, k
}

func TestModuleLoaderLoadsOnceInOrder(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		l, k := newFakeLoader(t, parallel)
		ctx := context.Background()
		var wg sync.WaitGroup
		sets := [][]string{
			{"virtio_pci", "virtio_console", "virtio_net"},
			{"virtio_net"},
			{"vmw_vsock_virtio_transport", "virtio_console"},
			{"virtio-pci"},
		}
		for _, s := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.loadModules(ctx, s...); err != nil {
					t.Errorf("LoadModules(%v): %v", s, err)
				}
			}()
		}
		wg.Wait()
		if k.loaded["virtio_ring"] != 0 {
			t.Errorf("parallel %d: loaded virtio_ring, which the kernel already had", parallel)
		}
		if len(k.order) != 10 {
			t.Errorf("parallel %d: loaded %v, want the 10 modules not already in the kernel", parallel, k.order)
		}
		for name, n := range k.loaded {
			if n != 1 {
				t.Errorf("parallel %d: %s loaded %d times", parallel, name, n)
			}
		}
		if names := l.timings.List(); len(names) != 10 {
			t.Errorf("parallel %d: %d timings recorded", parallel, len(names))
		}
	}
}

func TestModuleLoaderFailure(t *testing.T) {
	l, k := newFakeLoader(t, 2)
	k.fail["failover"] = true
	ctx := context.Background()
	err := l.loadModules(ctx, "virtio_net", "virtio_console")
	if err == nil || !strings.Contains(err.Error(), "load module failover: Invalid module format") ||
		!strings.Contains(err.Error(), "load module virtio_net: dependency failed") {
		t.Fatalf("error = %v", err)
	}
	if k.loaded["virtio_console"] != 1 {
		t.Error("an unrelated module did not load because another failed")
	}
	if k.loaded["virtio_net"] != 0 {
		t.Error("virtio_net loaded although its dependency failed")
	}
	// The failure is remembered rather than retried.
	if err := l.EnsureModule(ctx, "net_failover"); err == nil {
		t.Error("second attempt: no error")
	}
}

func TestEnsureModule(t *testing.T) {
	l, k := newFakeLoader(t, 1)
	ctx := context.Background()
	if err := l.EnsureModule(ctx, "ext4"); err != nil {
		t.Errorf("built-in module not in the list: %v", err)
	}
	if err := l.EnsureModule(ctx, "overlay"); err == nil || !strings.Contains(err.Error(), "neither built into the kernel nor in the module list") {
		t.Errorf("unknown module: %v", err)
	}
	if err := l.EnsureModule(ctx, "vmw-vsock-virtio-transport"); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureModule(ctx, "vmw_vsock_virtio_transport"); err != nil {
		t.Fatal(err)
	}
	if k.loaded["vmw_vsock_virtio_transport"] != 1 || k.loaded["vsock"] != 1 {
		t.Errorf("loads: %v", k.loaded)
	}
}

func TestModuleLoaderContext(t *testing.T) {
	l, k := newFakeLoader(t, 1)
	k.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.loadModules(ctx, "virtio_console"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	close(k.block)
	// The load that had begun finishes for later callers.
	if err := l.loadModules(context.Background(), "virtio_console"); err != nil {
		t.Error(err)
	}
	if k.loaded["virtio_console"] != 1 {
		t.Errorf("loads: %v", k.loaded)
	}
}

func TestFinitModuleMissingFile(t *testing.T) {
	err := finitModule(kernelModule{Name: "nope", Path: filepath.Join(t.TempDir(), "nope.ko")})
	if err == nil || !strings.Contains(err.Error(), "nope.ko") {
		t.Errorf("missing .ko: %v", err)
	}
}
