package container_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
)

// TestCgroupV2Placement runs the cgroup v2 code path on a hybrid host's
// unified hierarchy (which has no controllers here, so no limits): the
// warm init is born in its cgroup, exec forks into it, the device filter
// (eBPF) is in force, and the cgroup goes away with the container. On a
// unified host every other test already runs on v2.
func TestCgroupV2Placement(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified (a unified host runs v2 in every test)")
	}
	r := newRuntime(t, container.Options{CgroupMode: "v2", CgroupRoot: "/sys/fs/cgroup/unified"})
	s := spec(t, "sh", "-c", "grep '^0::' /proc/self/cgroup; mknod /tmp/sda b 8 0 && head -c1 /tmp/sda; sleep 1000")
	c, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	line := readLine(t, c.Stdout, "the init's cgroup")
	want := "/" + c.Cgroup()
	if !strings.HasSuffix(line, want) {
		t.Errorf("init's cgroup %q, want suffix %q", line, want)
	}
	p, err := c.Exec(context.Background(), &container.ExecSpec{Args: []string{"sh", "-c", "grep '^0::' /proc/self/cgroup"}})
	if err != nil {
		t.Fatal(err)
	}
	out := containertest.ReadAll(t, p.Stdout, "the exec's cgroup")
	p.Stdout.Close()
	p.Stderr.Close()
	waitExit(t, p, "exec")
	if !strings.HasSuffix(strings.TrimSpace(out), want) {
		t.Errorf("exec's cgroup %q, want suffix %q", out, want)
	}
	if errOut := readLine(t, c.Stderr, "the device filter's error"); !strings.Contains(errOut, "Operation not permitted") {
		t.Errorf("device filter: %q", errOut)
	}
	c.Signal(syscall.SIGKILL)
	waitExit(t, c.Process, "container after SIGKILL")
	c.Stdout.Close()
	c.Stderr.Close()
	if _, err := os.Stat("/sys/fs/cgroup/unified/" + c.Cgroup()); !os.IsNotExist(err) {
		t.Errorf("cgroup left after exit: %v", err)
	}
}
