package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/engine"
)

func TestVolumes(t *testing.T) {
	root := t.TempDir()
	e := newEngine(t, root)
	run := func(cfg api.ContainerConfig) string {
		t.Helper()
		o := mustRunIt(t, e, cfg)
		if o.code != 0 {
			t.Fatalf("%v: exit %d, %q", cfg.Cmd, o.code, o.stderr)
		}
		return o.stdout
	}
	vol := func(name, target string) api.Mount {
		return api.Mount{Type: api.MountVolume, Source: name, Target: target}
	}

	t.Run("a named volume keeps data across containers", func(t *testing.T) {
		run(api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "echo kept > /data/f"}, Mounts: []api.Mount{vol("keep", "/data")}, AutoRemove: true})
		if out := run(api.ContainerConfig{Image: "busybox", Cmd: []string{"cat", "/data/f"}, Mounts: []api.Mount{vol("keep", "/data")}, AutoRemove: true}); out != "kept\n" {
			t.Errorf("second container read %q", out)
		}
		if _, err := e.VolumeInspect("keep"); err != nil {
			t.Errorf("inspect: %v", err)
		}
	})
	t.Run("a new volume is filled from the image once", func(t *testing.T) {
		out := run(api.ContainerConfig{Image: "vmbox-test", Cmd: []string{"sh", "-c", "stat -c '%u %n' /home/app; touch /home/new"}, Mounts: []api.Mount{vol("home", "/home")}, AutoRemove: true})
		if out != "1000 /home/app\n" {
			t.Errorf("copied-up directory: %q", out)
		}
		v, _ := e.VolumeInspect("home")
		fi, err := os.Stat(filepath.Join(v.Mountpoint, "app"))
		if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
			t.Errorf("the volume's app: %v", err)
		}
		// Emptied by hand, it stays empty: copy-up is for the first use.
		os.RemoveAll(filepath.Join(v.Mountpoint, "app"))
		os.Remove(filepath.Join(v.Mountpoint, "new"))
		if out := run(api.ContainerConfig{Image: "vmbox-test", Cmd: []string{"ls", "/home"}, Mounts: []api.Mount{vol("home", "/home")}, AutoRemove: true}); out != "" {
			t.Errorf("second use listed %q", out)
		}
	})
	t.Run("anonymous volumes go with rm -v and run --rm", func(t *testing.T) {
		before := len(mustVolumes(t, e))
		created, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"true"}, Mounts: []api.Mount{{Type: api.MountVolume, Target: "/anon"}}}, engine.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mustVolumes(t, e)); n != before+1 {
			t.Fatalf("%d volumes after create, want %d", n, before+1)
		}
		if err := e.RemoveWith(within(t), created.ID, engine.RemoveOptions{Volumes: true}); err != nil {
			t.Fatal(err)
		}
		if n := len(mustVolumes(t, e)); n != before {
			t.Errorf("%d volumes after rm -v, want %d", n, before)
		}
		run(api.ContainerConfig{Image: "busybox", Cmd: []string{"true"}, Mounts: []api.Mount{{Type: api.MountVolume, Target: "/anon"}}, AutoRemove: true})
		if n := len(mustVolumes(t, e)); n != before {
			t.Errorf("%d volumes after run --rm, want %d", n, before)
		}
	})
	t.Run("a volume in use is not removed", func(t *testing.T) {
		created, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"true"}, Mounts: []api.Mount{vol("busy", "/x")}}, engine.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.VolumeRemove("busy", false); !errors.Is(err, engine.ErrConflict) {
			t.Errorf("remove of a volume in use: %v", err)
		}
		e.Remove(within(t), created.ID, false)
		if err := e.VolumeRemove("busy", false); err != nil {
			t.Errorf("remove once free: %v", err)
		}
		if err := e.VolumeRemove("busy", false); !errors.Is(err, engine.ErrNoSuchVolume) {
			t.Errorf("remove twice: %v", err)
		}
	})
	t.Run("volumes-from and read-only", func(t *testing.T) {
		src, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"true"}, Mounts: []api.Mount{vol("shared", "/shared")}}, engine.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Remove(within(t), src.ID, false)
		run(api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "echo via-from > /shared/f"}, VolumesFrom: []string{src.ID}, AutoRemove: true})
		o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "cat /shared/f; touch /shared/g"}, VolumesFrom: []string{src.ID + ":ro"}, AutoRemove: true})
		if o.stdout != "via-from\n" || o.code == 0 {
			t.Errorf("read-only volumes-from: %+v", o)
		}
	})
	t.Run("bad mounts are refused", func(t *testing.T) {
		for _, m := range []api.Mount{
			{Type: api.MountBind, Source: "/nonexistent-vmbox-path", Target: "/x"},
			{Type: api.MountVolume, Source: "bad name", Target: "/x"},
			{Type: api.MountVolume, Source: "v", Target: "relative"},
		} {
			if _, err := e.Create(within(t), api.ContainerConfig{Image: "busybox", Cmd: []string{"true"}, Mounts: []api.Mount{m}}, engine.PullOptions{}); !errors.Is(err, engine.ErrInvalid) {
				t.Errorf("%+v: %v", m, err)
			}
		}
	})
	t.Run("volumes survive the engine", func(t *testing.T) {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e2, err := engine.New(engine.Options{Root: root, Images: images(t), Runtime: container.Options{CgroupParent: "vmbox-etest-vol"}})
		if err != nil {
			t.Fatal(err)
		}
		defer e2.Close()
		v, err := e2.VolumeInspect("keep")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(v.Mountpoint, "f")); err != nil || string(b) != "kept\n" {
			t.Errorf("after reopening: %q %v", b, err)
		}
	})
}

func mustVolumes(t *testing.T, e *engine.Engine) []api.Volume {
	t.Helper()
	vs, err := e.VolumeList(nil)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}
