package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// volumeCases: named volumes keep data across containers, a new volume is
// filled from the image, rm -v takes anonymous volumes, a volume in use
// stays, and the VM's Docker socket mounts into a container.
func volumeCases(t *testing.T, tg *target) {
	img := tg.reg + "/busybox"
	must := func(args ...string) result {
		t.Helper()
		r := tg.run(args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
		return r
	}
	t.Run("a named volume keeps data across containers", func(t *testing.T) {
		if r := must("volume", "create", "e2edata"); r.stdout != "e2edata\n" {
			t.Fatalf("volume create: %s", r)
		}
		must("run", "--rm", "-v", "e2edata:/data", img, "sh", "-c", "echo kept > /data/f")
		if r := must("run", "--rm", "--mount", "type=volume,source=e2edata,target=/d,readonly", img, "cat", "/d/f"); r.stdout != "kept\n" {
			t.Errorf("second container: %s", r)
		}
		if r := must("volume", "ls", "-q"); !strings.Contains(r.stdout, "e2edata\n") {
			t.Errorf("volume ls: %s", r)
		}
	})
	t.Run("a new volume is filled from the image", func(t *testing.T) {
		must("run", "--rm", "-v", "e2ecopy:/bin", img, "true")
		if r := must("run", "--rm", "-v", "e2ecopy:/copied", img, "ls", "/copied"); !strings.Contains(r.stdout, "busybox\n") {
			t.Errorf("the volume holds %q, not the image's /bin", r.stdout)
		}
	})
	t.Run("rm -v removes an anonymous volume", func(t *testing.T) {
		// (vmbox create makes instances: a container that waits instead.)
		id := strings.TrimSpace(must("run", "-d", "-v", "/anon", img, "sleep", "300").stdout)
		var insp []struct{ Mounts []struct{ Name string } }
		if err := json.Unmarshal([]byte(must("inspect", id).stdout), &insp); err != nil || len(insp) != 1 || len(insp[0].Mounts) != 1 {
			t.Fatalf("inspect: %v %+v", err, insp)
		}
		anon := insp[0].Mounts[0].Name
		if r := tg.run("volume", "rm", anon); r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "volume is in use") {
			t.Errorf("rm of a volume in use: %s", r)
		}
		must("rm", "-f", "-v", id)
		if r := must("volume", "ls", "-q"); strings.Contains(r.stdout, anon) {
			t.Errorf("anonymous volume %s left after rm -v", anon)
		}
	})
	t.Run("exec sees the container's own files", func(t *testing.T) {
		id := strings.TrimSpace(must("run", "-d", "-v", "e2edata:/data", img, "sleep", "300").stdout)
		defer tg.run("rm", "-f", id)
		if r := must("exec", id, "sh", "-c", "cat /data/f; cat /etc/hostname"); r.stdout != "kept\n"+id[:12]+"\n" {
			t.Errorf("exec read %q", r.stdout)
		}
	})
	t.Run("the VM's Docker socket mounts into a container", func(t *testing.T) {
		if r := must("run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", img, "test", "-S", "/var/run/docker.sock"); r.code != 0 {
			t.Errorf("docker.sock: %s", r)
		}
	})
}
