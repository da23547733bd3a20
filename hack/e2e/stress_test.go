package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stressCycles and stressMiB bound TestStressBulkTransfer for CI; the wedge
// it hunts was seen once in 23 transfers, so a hunt sets VMBOX_STRESS_CYCLES
// much higher.
const (
	stressCycles = 10
	stressMiB    = 50
)

// guestLockupSigns are what a wedged guest kernel prints on its console.
var guestLockupSigns = []string{"soft lockup", "hard LOCKUP", "rcu_sched self-detected stall", "rcu: INFO: rcu_preempt", "detected stall", "hung_task", "BUG:"}

// TestStressBulkTransfer boots the VM again and again and moves stressMiB
// each way through the agent channel right after boot, with the host's CPUs
// contended by busy loops, and fails on any sign of a guest lockup.
func TestStressBulkTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	e := newEnv(t)
	cycles := stressCycles
	if v, err := strconv.Atoi(os.Getenv("VMBOX_STRESS_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	const name = "stress"
	// Full console log level: a lockup's backtraces are the evidence.
	e.extra = append(e.extra, "VMBOX_KERNEL_ARGS=loglevel=7")
	e.must("create", "--name", name, "--memory", "1GiB", "--disk", "4GiB")

	// Contend the host: one busy loop per host CPU, for the whole test.
	ctx, stopHogs := context.WithCancel(context.Background())
	var hogs []*exec.Cmd
	defer func() {
		stopHogs()
		for _, h := range hogs {
			h.Wait()
		}
	}()
	for i := 0; i < runtime.NumCPU(); i++ {
		hog := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, hog)
	}

	payload := bytes.Repeat([]byte("vmbox stress payload 0123456789\n"), stressMiB<<20/32)
	want := fmt.Sprintf("%x", sha256.Sum256(payload))
	in := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(in, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(e.home, name, "console.log")
	for i := 1; i <= cycles; i++ {
		start := time.Now()
		e.must("start", "--name", name)
		booted := time.Since(start)
		// Host to guest: the guest checks what it received.
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		r := e.runFile(f, "shell", "--name", name, "--", "sh", "-c", "sha256sum | cut -d' ' -f1")
		f.Close()
		if r.code != 0 || strings.TrimSpace(r.stdout) != want {
			t.Fatalf("cycle %d: host to guest: %s\n%s", i, r, e.consoleTail([]string{"--name", name}))
		}
		up := time.Since(start) - booted
		// Guest to host: the guest writes a known stream.
		r = e.run("shell", "--name", name, "--", "sh", "-c", fmt.Sprintf("yes 'vmbox stress payload 0123456789' | head -c %d", len(payload)))
		if r.code != 0 || r.stdout != string(payload) {
			t.Fatalf("cycle %d: guest to host: exit %d, %d bytes, stderr %q", i, r.code, len(r.stdout), r.stderr)
		}
		down := time.Since(start) - booted - up
		e.must("stop", "--name", name)
		t.Logf("cycle %d: boot %.1fs, %d MiB up %.1fs, down %.1fs", i, booted.Seconds(), stressMiB, up.Seconds(), down.Seconds())
		b, _ := os.ReadFile(console)
		for _, sign := range guestLockupSigns {
			if bytes.Contains(b, []byte(sign)) {
				t.Fatalf("cycle %d: guest console shows %q:\n%s", i, sign, e.consoleTail([]string{"--name", name}))
			}
		}
	}
}
