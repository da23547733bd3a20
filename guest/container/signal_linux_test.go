package container_test

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
)

// TestSignalAfterReady sends SIGTERM to container after container the
// moment each says its trap is set, which is when the runtime is starting
// the next warm helper in the background: every signal must reach its own
// container's PID 1 (exit 143 through the trap, with the trap's output),
// never a helper or another container. Both helper kinds (private and host
// network) take turns, and a bystander container runs throughout. A signal
// that goes missing fails the iteration after Patience, with the process's
// signal state, instead of hanging.
func TestSignalAfterReady(t *testing.T) {
	r := newRuntime(t, container.Options{})
	n := 50
	if testing.Short() {
		n = 10
	}
	by := spec(t, "sleep", "1000")
	bystander, err := r.Start(context.Background(), by)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(by.Dir)
	go bystander.Wait()
	defer func() {
		bystander.Signal(syscall.SIGKILL)
		waitExit(t, bystander.Process, "bystander after SIGKILL")
		bystander.Stdout.Close()
		bystander.Stderr.Close()
	}()

	for i := range n {
		s := spec(t, "sh", "-c", "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.05; done")
		if i%2 == 1 {
			s.NetworkMode = container.NetworkHost
		}
		c, err := r.Start(context.Background(), s)
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if line := containertest.ReadFull(t, c.Stdout, 6, fmt.Sprintf("ready line %d", i)); line != "ready\n" {
			t.Fatalf("iteration %d: read %q", i, line)
		}
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("iteration %d: signal: %v", i, err)
		}
		exit, err := waitExit(t, c.Process, fmt.Sprintf("iteration %d (network %q): exit on SIGTERM", i, s.NetworkMode))
		rest := containertest.ReadAll(t, c.Stdout, fmt.Sprintf("iteration %d: output after SIGTERM", i))
		c.Stdout.Close()
		c.Stderr.Close()
		if err != nil || exit.Code != 143 || exit.Signal != 0 || rest != "got-term\n" {
			t.Fatalf("iteration %d: exit %+v %v, output %q; want 143 from the trap", i, exit, err, rest)
		}
		select {
		case <-bystander.Done():
			t.Fatalf("iteration %d: the bystander container exited", i)
		default:
		}
		os.RemoveAll(s.Dir)
	}
}
