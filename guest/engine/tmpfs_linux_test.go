package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

func TestTmpfs(t *testing.T) {
	e := newEngine(t, t.TempDir())
	script := `grep ' /scratch ' /proc/mounts; stat -c %a /scratch; ` +
		`echo hi > /scratch/f && cat /scratch/f; ` +
		`dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo full; ` +
		`grep ' /app/run ' /proc/mounts | cut -d' ' -f3`
	o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", ReadOnly: true,
		Tmpfs: map[string]string{"/scratch": "size=1m", "/app/run": "exec,mode=755"},
		Cmd:   []string{"sh", "-c", script}})
	lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
	if o.code != 0 || len(lines) != 5 {
		t.Fatalf("exit %d, output %q, stderr %q", o.code, o.stdout, o.stderr)
	}
	mnt := lines[0]
	for _, want := range []string{"tmpfs /scratch tmpfs", "nosuid", "nodev", "noexec", "size=1024k"} {
		if !strings.Contains(mnt, want) {
			t.Errorf("mount %q lacks %q", mnt, want)
		}
	}
	if lines[1] != "1777" || lines[2] != "hi" || lines[3] != "full" || lines[4] != "tmpfs" {
		t.Errorf("mode, write, size limit, nested mount: %q", lines[1:])
	}
	for _, bad := range []map[string]string{{"scratch": ""}, {"/": ""}, {"/x": "size=lots"}, {"/x": "bogus"}} {
		if _, err := e.Create(context.Background(), api.ContainerConfig{Image: "busybox", Tmpfs: bad}, engine.PullOptions{}); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("tmpfs %v: %v, want ErrInvalid", bad, err)
		}
	}
}
