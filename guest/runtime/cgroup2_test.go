package runtime_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/runtime"
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
	r := newRuntime(t, runtime.Options{CgroupMode: "v2", CgroupRoot: "/sys/fs/cgroup/unified"})
	s := spec(t, "sh", "-c", "grep '^0::' /proc/self/cgroup; mknod /tmp/sda b 8 0 && head -c1 /tmp/sda; sleep 1000")
	c, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	line := make([]byte, 0, 128)
	buf := make([]byte, 1)
	for {
		if _, err := c.Stdout.Read(buf); err != nil {
			t.Fatal(err)
		}
		if buf[0] == '\n' {
			break
		}
		line = append(line, buf[0])
	}
	want := "/" + c.Cgroup()
	if !strings.HasSuffix(string(line), want) {
		t.Errorf("init's cgroup %q, want suffix %q", line, want)
	}
	p, err := c.Exec(context.Background(), &runtime.ExecSpec{Args: []string{"sh", "-c", "grep '^0::' /proc/self/cgroup"}})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 256)
	n, _ := p.Stdout.Read(out)
	p.Stdout.Close()
	p.Stderr.Close()
	p.Wait()
	if !strings.HasSuffix(strings.TrimSpace(string(out[:n])), want) {
		t.Errorf("exec's cgroup %q, want suffix %q", out[:n], want)
	}
	errOut := make([]byte, 256)
	n, _ = c.Stderr.Read(errOut)
	if !strings.Contains(string(errOut[:n]), "Operation not permitted") {
		t.Errorf("device filter: %q", errOut[:n])
	}
	c.Signal(syscall.SIGKILL)
	c.Wait()
	c.Stdout.Close()
	c.Stderr.Close()
	if _, err := os.Stat("/sys/fs/cgroup/unified/" + c.Cgroup()); !os.IsNotExist(err) {
		t.Errorf("cgroup left after exit: %v", err)
	}
}
