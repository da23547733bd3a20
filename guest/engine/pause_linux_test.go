package engine_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

// TestPause freezes a container where cgroup v2 can (the VM), and says why
// not where it cannot (cgroup v1 hosts).
func TestPause(t *testing.T) {
	e := newEngine(t, t.TempDir())
	created, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "while :; do sleep 0.05; done"}}, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Remove(within(t), created.ID, true)
	if err := e.Start(within(t), created.ID); err != nil {
		t.Fatal(err)
	}
	err = e.Pause(created.ID)
	if _, statErr := os.Stat("/sys/fs/cgroup/cgroup.controllers"); statErr != nil {
		if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), "cgroup v2") {
			t.Fatalf("pause on cgroup v1: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Inspect(created.ID); !c.State.Paused || c.State.Status != "paused" {
		t.Errorf("state after pause: %+v", c.State)
	}
	if _, err := e.Exec(within(t), api.ExecArgs{Container: created.ID, Cmd: []string{"true"}}, engine.Streams{}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("exec in a paused container: %v", err)
	}
	if err := e.Unpause(created.ID); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Inspect(created.ID); c.State.Paused || c.State.Status != "running" {
		t.Errorf("state after unpause: %+v", c.State)
	}
	// A paused container stops: it is thawed for the signal.
	if err := e.Pause(created.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(within(t), created.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}
