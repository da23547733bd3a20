package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var netnsSeq atomic.Int32

// New creates a named network namespace with iproute2 and removes it
// when the test ends. Tests configure only namespaces they create.
func New(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2's ip is not installed: cannot create network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces needs root")
	}
	name := fmt.Sprintf("vmboxtest-%d-%d", os.Getpid(), netnsSeq.Add(1))
	IP(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// IP runs ip with args and returns its output, failing the test on error.
func IP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs f on an OS thread that has joined the named network
// namespace. The thread is never unlocked, so it dies with the goroutine
// rather than going back to the scheduler in the wrong namespace. f must
// report failures with t.Error, not t.Fatal.
func Run(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Errorf("open netns %s: %v", name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", name, err)
			return
		}
		f()
	}()
	<-done
}
