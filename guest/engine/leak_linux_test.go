package engine_test

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/engine"
)

// resources counts what a leak would grow: this process's mounts, open
// descriptors, child processes and goroutines, and the engine's cgroups.
type resources struct {
	mounts, fds, children, cgroups, goroutines int
}

func count(parent string) resources {
	var r resources
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		r.mounts = strings.Count(string(b), "\n")
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		r.fds = len(ents)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		r.children += len(strings.Fields(string(b)))
	}
	r.cgroups = containertest.CgroupCount(parent)
	r.goroutines = runtime.NumGoroutine()
	return r
}

// same compares counts; goroutines may be fewer (some were on their way
// out when want was taken) and at most two more (the runtime's own).
func same(got, want resources) bool {
	g, w := got, want
	g.goroutines, w.goroutines = 0, 0
	return g == w && got.goroutines <= want.goroutines+2
}

// settle lets goroutines and processes that are on their way out finish.
func settle(parent string, want resources) resources {
	var r resources
	for i := 0; i < 100; i++ {
		r = count(parent)
		if same(r, want) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// TestRunRemoveLeaks runs `run --rm` 200 times (20 with -short) and checks
// that mounts, descriptors, processes, cgroups and goroutines come back to
// where they were, both with the engine open and after Close.
func TestRunRemoveLeaks(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 20
	}
	images(t)
	parent := "vmbox-etest-" + containertest.RandHex(4)
	defer containertest.RemoveCgroupParent(parent)
	root := t.TempDir()
	before := count(parent)
	e, err := engine.New(engine.Options{Root: root, Images: store, Runtime: runtimeOptions(parent)})
	if err != nil {
		t.Fatal(err)
	}
	run := func() {
		ctx, cancel := context.WithTimeout(context.Background(), containertest.Patience)
		defer cancel()
		res, err := e.Run(ctx, api.RunArgs{Config: api.ContainerConfig{Image: "busybox", AutoRemove: true, Cmd: []string{"sh", "-c", "echo hi; echo ho >&2"}}}, engine.Streams{}, nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run: %+v %v", res, err)
		}
	}
	run()
	e.Idle()
	open := count(parent)
	for i := 0; i < n; i++ {
		run()
	}
	e.Idle()
	if got := settle(parent, open); !same(got, open) {
		t.Errorf("after %d runs: %+v, before them %+v", n, got, open)
	}
	if ents, _ := os.ReadDir(root + "/containers"); len(ents) != 0 {
		t.Errorf("%d container directories left", len(ents))
	}
	if ents, _ := os.ReadDir(root + "/trash"); len(ents) != 0 {
		t.Errorf("%d trash entries left", len(ents))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if got := settle(parent, before); !same(got, before) {
		t.Errorf("after close: %+v, before the engine %+v", got, before)
	}
}
