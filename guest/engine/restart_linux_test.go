package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/engine"
)

// eventually polls the container's inspection until ok accepts it.
func eventually(t *testing.T, e *engine.Engine, ref, what string, ok func(api.ContainerInspect) bool) api.ContainerInspect {
	t.Helper()
	deadline := time.Now().Add(containertest.Patience)
	for {
		in, err := e.Inspect(ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never came; last state %+v, restarts %d", ref, what, in.State, in.RestartCount)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startDetached creates and starts a container.
func startDetached(t *testing.T, e *engine.Engine, cfg api.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	cr, err := e.Create(ctx, cfg, engine.PullOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", cfg.Name, err)
	}
	if err := e.Start(ctx, cr.ID); err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	return cr.ID
}

func TestRestartPolicies(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := context.Background()
	bb := func(name string, p api.RestartPolicy, script string) api.ContainerConfig {
		return api.ContainerConfig{Image: "busybox", Name: name, RestartPolicy: p, Cmd: []string{"sh", "-c", script}}
	}

	t.Run("on-failure stops after its retries", func(t *testing.T) {
		startDetached(t, e, bb("fail3", api.RestartPolicy{Name: api.RestartOnFailure, MaximumRetryCount: 2}, "exit 3"))
		in := eventually(t, e, "fail3", "two restarts, then exited", func(in api.ContainerInspect) bool {
			return in.RestartCount == 2 && in.State.Status == "exited"
		})
		if in.State.ExitCode != 3 {
			t.Errorf("exit code %d, want 3", in.State.ExitCode)
		}
		time.Sleep(time.Second)
		if in, _ := e.Inspect("fail3"); in.RestartCount != 2 || in.State.Status != "exited" {
			t.Errorf("after its retries: restarts %d, status %s", in.RestartCount, in.State.Status)
		}
	})
	t.Run("on-failure leaves a success alone, no never restarts", func(t *testing.T) {
		startDetached(t, e, bb("ok0", api.RestartPolicy{Name: api.RestartOnFailure}, "exit 0"))
		startDetached(t, e, bb("never", api.RestartPolicy{}, "exit 1"))
		for _, name := range []string{"ok0", "never"} {
			eventually(t, e, name, "exited", func(in api.ContainerInspect) bool { return in.State.Status == "exited" })
		}
		time.Sleep(time.Second)
		for _, name := range []string{"ok0", "never"} {
			if in, _ := e.Inspect(name); in.RestartCount != 0 || in.State.Status != "exited" {
				t.Errorf("%s: restarts %d, status %s", name, in.RestartCount, in.State.Status)
			}
		}
	})
	t.Run("always restarts until stopped by hand", func(t *testing.T) {
		startDetached(t, e, bb("loop", api.RestartPolicy{Name: api.RestartAlways}, "sleep 0.1"))
		eventually(t, e, "loop", "two restarts", func(in api.ContainerInspect) bool { return in.RestartCount >= 2 })
		if ps := list(t, e, false); !listed(ps, "/loop") {
			t.Errorf("a restarting container is missing from ps: %+v", ps)
		}
		// It may be running or waiting to restart: a stop ends both.
		if err := e.Stop(ctx, "loop", 5*time.Second); err != nil && !errors.Is(err, engine.ErrNotRunning) {
			t.Fatalf("stop: %v", err)
		}
		in := eventually(t, e, "loop", "exited", func(in api.ContainerInspect) bool { return in.State.Status == "exited" })
		time.Sleep(time.Second)
		if again, _ := e.Inspect("loop"); again.RestartCount != in.RestartCount || again.State.Status != "exited" {
			t.Errorf("restarted after a stop by hand: %d -> %d restarts, status %s", in.RestartCount, again.RestartCount, again.State.Status)
		}
		// A start by hand counts from zero again.
		if err := e.Start(ctx, "loop"); err != nil {
			t.Fatal(err)
		}
		if in, _ := e.Inspect("loop"); in.RestartCount != 0 {
			t.Errorf("restarts after a start by hand: %d", in.RestartCount)
		}
		if err := e.Remove(ctx, "loop", true); err != nil {
			t.Fatalf("rm -f: %v", err)
		}
	})
	t.Run("a restarting container is removed only by force", func(t *testing.T) {
		startDetached(t, e, bb("flap", api.RestartPolicy{Name: api.RestartAlways}, "exit 1"))
		eventually(t, e, "flap", "restarting", func(in api.ContainerInspect) bool {
			return in.State.Status == "restarting" && in.State.Restarting
		})
		if err := e.Remove(ctx, "flap", false); !errors.Is(err, engine.ErrConflict) {
			t.Errorf("rm of a restarting container = %v, want a conflict", err)
		}
		if err := e.Remove(ctx, "flap", true); err != nil {
			t.Fatalf("rm -f: %v", err)
		}
		if _, err := e.Inspect("flap"); !errors.Is(err, engine.ErrNoSuchContainer) {
			t.Errorf("inspect after rm -f: %v", err)
		}
	})
	t.Run("bad policies", func(t *testing.T) {
		for _, cfg := range []api.ContainerConfig{
			{Image: "busybox", RestartPolicy: api.RestartPolicy{Name: "sometimes"}},
			{Image: "busybox", RestartPolicy: api.RestartPolicy{Name: api.RestartAlways, MaximumRetryCount: 1}},
			{Image: "busybox", AutoRemove: true, RestartPolicy: api.RestartPolicy{Name: api.RestartAlways}},
		} {
			if _, err := e.Create(ctx, cfg, engine.PullOptions{}); !errors.Is(err, engine.ErrInvalid) {
				t.Errorf("create with %+v (rm %v) = %v, want ErrInvalid", cfg.RestartPolicy, cfg.AutoRemove, err)
			}
		}
	})
}

// TestRestartPoliciesWhenTheEngineOpens: always and unless-stopped
// containers come back when the engine opens again (a VM restart), except
// an unless-stopped one stopped by hand.
func TestRestartPoliciesWhenTheEngineOpens(t *testing.T) {
	root := t.TempDir()
	e := newEngine(t, root)
	ctx := context.Background()
	long := []string{"sleep", "600"}
	for _, c := range []struct {
		name   string
		policy string
		stop   bool
	}{
		{"always-stopped", api.RestartAlways, true},
		{"unless-running", api.RestartUnlessStopped, false},
		{"unless-stopped", api.RestartUnlessStopped, true},
		{"no-policy", api.RestartNo, false},
	} {
		startDetached(t, e, api.ContainerConfig{Image: "busybox", Name: c.name, Cmd: long, RestartPolicy: api.RestartPolicy{Name: c.policy}})
		if c.stop {
			if err := e.Stop(ctx, c.name, 0); err != nil {
				t.Fatalf("stop %s: %v", c.name, err)
			}
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = newEngine(t, root)
	for name, want := range map[string]string{
		"always-stopped": "running", "unless-running": "running",
		"unless-stopped": "exited", "no-policy": "exited",
	} {
		if want == "running" {
			eventually(t, e, name, "running again", func(in api.ContainerInspect) bool { return in.State.Status == "running" })
			continue
		}
		time.Sleep(500 * time.Millisecond)
		if in, _ := e.Inspect(name); in.State.Status != want {
			t.Errorf("%s: status %s, want %s", name, in.State.Status, want)
		}
	}
}

func listed(ps []api.ContainerSummary, name string) bool {
	for _, p := range ps {
		for _, n := range p.Names {
			if n == name {
				return true
			}
		}
	}
	return false
}
