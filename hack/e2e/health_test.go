package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"

	"github.com/vmbox/vmbox/host/driver/qemu"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// signalEnds starts vmbox with args, waits until ready says it is under
// way, sends sig, and fails unless the command exits within limit.
func signalEnds(t *testing.T, e *env, sig syscall.Signal, limit time.Duration, ready func(out *syncBuffer) bool, stdin *os.File, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !ready(&out) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("vmbox %v never got under way: %q", args, out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("vmbox %v ended before the signal: %v %q", args, err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	sent := time.Now()
	cmd.Process.Signal(sig)
	select {
	case <-done:
		if took := time.Since(sent); took > limit {
			t.Errorf("vmbox %v took %s to end on %s (limit %s)", args, took, sig, limit)
		}
	case <-time.After(limit + 5*time.Second):
		cmd.Process.Kill()
		t.Fatalf("vmbox %v ignored %s: %q", args, sig, out.String())
	}
}

func after(d time.Duration) func(*syncBuffer) bool {
	start := time.Now()
	return func(*syncBuffer) bool { return time.Since(start) > d }
}

func saying(s string) func(*syncBuffer) bool {
	return func(out *syncBuffer) bool { return strings.Contains(out.String(), s) }
}

// idleStdin is a pipe nobody writes to, like a terminal nobody types in.
// (An io.Reader would make exec.Cmd.Wait wait for its copy to end.)
func idleStdin(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r
}

// freezeAgent stops the agent process in the guest (SIGSTOP from a
// detached shell, a second after this command returns): the VM runs on
// with a silent agent, as a wedged guest would look from the host.
func freezeAgent(t *testing.T, e *env, name string) {
	t.Helper()
	script := `setsid sh -c 'sleep 1; kill -STOP $(ps -o pid,ppid,comm | awk "\$2==1 && \$3==\"init\" {print \$1}")' </dev/null >/dev/null 2>&1 &`
	e.must("shell", "--name", name, "--", "sh", "-c", script)
}

// guestClockDrift is the guest's wall clock minus the host's, read with
// ping@vmbox through the instance socket (its reply carries the guest's
// clock) and taken at the middle of the round trip.
func guestClockDrift(t *testing.T, e *env, name string) time.Duration {
	t.Helper()
	keys, err := instance.LoadKeys(filepath.Join(e.home, name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sshclient.Dial(ctx, filepath.Join(e.home, name, instance.SocketFile), keys)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := time.Now()
	guest, err := sshproto.Ping(ctx, c.SSH())
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	return guest.Sub(before.Add(after.Sub(before) / 2))
}

// allocated is how many bytes of the file at path are backed by blocks (du).
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// alive reports whether pid runs (a zombie nobody reaped yet does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// TestVMHealth boots one VM and checks that nothing hangs on it: signals
// end every kind of client command, a silent agent is reported and refused
// in bounded time, and stop always stops.
func TestVMHealth(t *testing.T) {
	e := newEnv(t)
	const name = "health"
	e.must("start", "--name", name, "--memory", "1GiB", "--disk", "4GiB")

	t.Run("SIGTERM ends client commands", func(t *testing.T) {
		// Attached: forwarded to the remote process, which dies of it.
		signalEnds(t, e, syscall.SIGTERM, 5*time.Second, saying("ready"), nil,
			"shell", "--name", name, "--", "sh", "-c", "echo ready; sleep 600")
		// Not attached: an interactive shell on a pipe, a load waiting for
		// its archive, logs -f of the console.
		signalEnds(t, e, syscall.SIGTERM, 3*time.Second, after(2*time.Second), idleStdin(t),
			"shell", "--name", name)
		signalEnds(t, e, syscall.SIGTERM, 3*time.Second, after(2*time.Second), idleStdin(t),
			"load", "--name", name)
		signalEnds(t, e, syscall.SIGHUP, 3*time.Second, after(time.Second), nil,
			"logs", "--name", name, "-f")
		signalEnds(t, e, syscall.SIGINT, 3*time.Second, after(time.Second), nil,
			"logs", "--name", name, "-f")
	})

	t.Run("the guest clock is corrected after a pause", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		qmp := qemu.QMPSocket(filepath.Join(e.home, name))
		if _, err := qemu.QMP(ctx, qmp, "stop", nil); err != nil {
			t.Fatalf("pause: %v", err)
		}
		// Past the silence limit, status tells the paused guest from a
		// hung one.
		time.Sleep(25 * time.Second)
		st := e.status(name)
		if st.State != "unresponsive" || st.HypervisorState != "paused" || !strings.Contains(st.Hint, "paused") {
			t.Errorf("status of a VM paused for 25 s = %+v, want unresponsive, hypervisor state paused and a hint saying so", st)
		}
		time.Sleep(5 * time.Second)
		if _, err := qemu.QMP(ctx, qmp, "cont", nil); err != nil {
			t.Fatalf("resume: %v", err)
		}
		resumed := time.Now()
		var drift time.Duration
		for time.Since(resumed) < 5*time.Second {
			drift = guestClockDrift(t, e, name)
			if drift > -time.Second && drift < time.Second {
				t.Logf("guest clock within %s of the host's %s after resuming", drift, time.Since(resumed).Round(time.Millisecond))
				// The pause stopped the guest's clock: it was set, not
				// merely never off.
				if b, _ := os.ReadFile(filepath.Join(e.home, name, "hostproc.log")); !bytes.Contains(b, []byte("guest clock corrected")) {
					t.Errorf("host process log shows no clock correction:\n%s", lastLines(string(b), 8))
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("5 s after a 30 s pause the guest clock is %s off", drift)
	})

	t.Run("disk space returns to the host after rmi", func(t *testing.T) {
		big := make([]byte, 100<<20)
		rand.Read(big) // incompressible: the stored layer is as big as the file
		img := imagetest.NewImage(t, v1.Config{Env: []string{imagetest.DefaultPath}}, imagetest.Layer(t, imagetest.BusyboxEntries(t)),
			imagetest.Layer(t, []imagetest.Entry{{Name: "big.bin", Mode: 0o644, Body: big}}))
		archive := filepath.Join(t.TempDir(), "big.tar")
		f, err := os.Create(archive)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.WriteDockerArchive(t, f, map[string]v1.Image{"trimtest:latest": img})
		f.Close()
		e.must("load", "--name", name, "-i", archive)
		e.must("shell", "--name", name, "--", "sync")
		disk := filepath.Join(e.home, name, "data.raw")
		loaded := allocated(t, disk)
		e.must("rmi", "--name", name, "trimtest:latest")
		deadline := time.Now().Add(30 * time.Second)
		for {
			now := allocated(t, disk)
			if loaded-now >= 80<<20 {
				t.Logf("data disk: %d MiB allocated with the image, %d MiB after rmi", loaded>>20, now>>20)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("data disk holds %d MiB after rmi of a 100 MiB image (was %d MiB)", now>>20, loaded>>20)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("a frozen agent is reported, refused and stopped", func(t *testing.T) {
		hostPid, hvPid := e.bootInfo(name)
		freezeAgent(t, e, name)
		// Commands under way when the agent froze still end: first-answer
		// deadline, then exit 125.
		time.Sleep(2 * time.Second)
		start := time.Now()
		r := e.run("version", "--name", name)
		if r.code != 125 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stdout, "Client:") {
			t.Errorf("version on a frozen agent: %s", r)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("version took %s on a frozen agent", took)
		}
		// Shown as unresponsive (JSON too) once silent past the limit.
		deadline := time.Now().Add(30 * time.Second)
		for e.status(name).State != "unresponsive" {
			if time.Now().After(deadline) {
				t.Fatalf("status never said unresponsive: %+v", e.status(name))
			}
			time.Sleep(500 * time.Millisecond)
		}
		// The guest runs; only its agent is stopped.
		time.Sleep(2 * time.Second)
		if st := e.status(name); st.HypervisorState != "" {
			t.Errorf("a running guest with a frozen agent shown with hypervisor state %q", st.HypervisorState)
		}
		if r := e.must("status", "--name", name); !strings.Contains(r.stdout, "unresponsive") || !strings.Contains(r.stderr, "vmbox stop") {
			t.Errorf("status table: %s", r)
		}
		if r := e.must("status", "--name", name, "--format", "json"); !strings.Contains(r.stdout, `"hint"`) {
			t.Errorf("status JSON has no hint: %s", r)
		}
		// Refused at once now.
		start = time.Now()
		if r := e.run("shell", "--name", name, "--", "true"); r.code != 125 {
			t.Errorf("shell on an unresponsive VM: %s", r)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("refusal took %s", took)
		}
		// stop -t 2 returns within 2+5 s and leaves nothing behind.
		start = time.Now()
		r = e.must("stop", "--name", name, "-t", "2")
		if took := time.Since(start); took > 7*time.Second {
			t.Errorf("stop -t 2 of a frozen guest took %s", took)
		}
		if s := e.status(name); s.State != "stopped" {
			t.Errorf("after stop: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
		if alive(hostPid) || alive(hvPid) {
			t.Errorf("processes left behind: host process %d alive=%v, hypervisor %d alive=%v", hostPid, alive(hostPid), hvPid, alive(hvPid))
		}
		hostLog, _ := os.ReadFile(e.home + "/" + name + "/hostproc.log")
		t.Logf("host process log tail:\n%s", lastLines(string(hostLog), 8))
	})

	t.Run("SIGTERM to the host process stops the VM", func(t *testing.T) {
		e.must("start", "--name", name)
		hostPid, hvPid := e.bootInfo(name)
		syscall.Kill(hostPid, syscall.SIGTERM)
		e.waitState(name, "stopped")
		time.Sleep(200 * time.Millisecond)
		if alive(hvPid) {
			t.Errorf("hypervisor %d still alive after its host process stopped", hvPid)
		}
		if b, _ := os.ReadFile(e.home + "/" + name + "/hostproc.log"); !bytes.Contains(b, []byte("stopping VM on signal")) {
			t.Errorf("host process log does not show the signal stop:\n%s", lastLines(string(b), 8))
		}
	})

	t.Run("stop of a stopped instance and SIGTERM to stop", func(t *testing.T) {
		if r := e.must("stop", "--name", name); !strings.Contains(r.stdout, "not running") {
			t.Errorf("stop of a stopped instance: %s", r)
		}
		e.must("start", "--name", name)
		freezeAgent(t, e, name)
		time.Sleep(2 * time.Second)
		// A stop waiting out a long graceful timeout still ends on SIGTERM.
		signalEnds(t, e, syscall.SIGTERM, 3*time.Second, after(2*time.Second), nil, "stop", "--name", name, "-t", "60")
		e.must("stop", "--name", name, "-t", "0")
	})

	t.Run("an unused VM is paused and every use resumes it", func(t *testing.T) {
		e.must("stop", "--name", name) // when run alone; the settings apply at a start
		e.must("start", "--name", name, "--idle-pause", "5s")
		qmp := qemu.QMPSocket(filepath.Join(e.home, name))
		waitIdlePaused := func(what string) {
			t.Helper()
			deadline := time.Now().Add(45 * time.Second)
			for e.status(name).IdlePausedSince == nil {
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(filepath.Join(e.home, name, "hostproc.log"))
					t.Fatalf("%s: not paused 45 s later; host process log:\n%s", what, lastLines(string(b), 8))
				}
				time.Sleep(500 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw, err := qemu.QMP(ctx, qmp, "query-status", nil)
			if err != nil || !strings.Contains(string(raw), `"paused"`) {
				t.Fatalf("%s: status says paused while idle, QEMU says %s (%v)", what, raw, err)
			}
		}
		waitIdlePaused("after the start")
		if r := e.must("status", "--name", name); !strings.Contains(r.stdout, "paused while idle") || r.stderr != "" {
			t.Errorf("status of a VM paused while idle: %s", r)
		}
		// The guest's clock stood still while it was paused; the use that
		// resumes it (here a forwarded request) sees it set already.
		time.Sleep(6 * time.Second)
		if d := guestClockDrift(t, e, name); d < -time.Second || d > time.Second {
			t.Errorf("the first request after a pause of 6 s or more found the guest clock %s off", d)
		}
		if st := e.status(name); st.IdlePausedSince != nil || st.State != "running" {
			t.Errorf("after a use: %+v", st)
		}

		// An operation (a channel) resumes it; a running container keeps
		// it running.
		waitIdlePaused("after a request")
		archive := filepath.Join(t.TempDir(), "busybox.tar")
		f, err := os.Create(archive)
		if err != nil {
			t.Fatal(err)
		}
		imagetest.WriteDockerArchive(t, f, map[string]v1.Image{"idlebox:latest": imagetest.BusyboxImage(t)})
		f.Close()
		e.must("load", "--name", name, "-i", archive)
		// run's --name is the container's: the instance goes by variable.
		in := *e
		in.extra = append(append([]string(nil), e.extra...), "VMBOX_INSTANCE="+name)
		in.must("run", "-d", "--name", "awake", "idlebox:latest", "sleep", "600")
		time.Sleep(20 * time.Second)
		if st := e.status(name); st.IdlePausedSince != nil {
			t.Errorf("paused while a container runs: %+v", st)
		}
		in.must("rm", "-f", "awake")

		// A Docker API client resumes it.
		waitIdlePaused("after the container was removed")
		cli := dockerClient{t: t, bin: dockerCLIs["cli28"], host: e.status(name).DockerHost, cfg: t.TempDir()}
		if r := cli.run("", "images", "--format", "{{.Repository}}"); r.code != 0 || !strings.Contains(r.stdout, "idlebox") {
			t.Errorf("docker images on a VM paused while idle: %s", r)
		}

		// What the guest wrote before it was paused is on the data disk:
		// a host that loses power (here QEMU killed) while it is paused
		// loses none of it.
		e.must("shell", "--name", name, "--", "sh", "-c", "echo kept > /var/lib/vmbox/idle-pause-kept")
		waitIdlePaused("after a write")
		_, hv := e.bootInfo(name)
		syscall.Kill(hv, syscall.SIGKILL)
		e.waitState(name, "stopped")
		e.must("start", "--name", name)
		if r := e.must("shell", "--name", name, "--", "cat", "/var/lib/vmbox/idle-pause-kept"); strings.TrimSpace(r.stdout) != "kept" {
			t.Errorf("a file written before the pause, after QEMU was killed while paused: %s", r)
		}

		// Stop resumes it for a clean shutdown, in its usual time.
		waitIdlePaused("after the restart")
		start := time.Now()
		e.must("stop", "--name", name)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("stop of a VM paused while idle took %s", took)
		}
		b, _ := os.ReadFile(filepath.Join(e.home, name, "hostproc.log"))
		log := string(b)
		log = log[max(0, strings.LastIndex(log, "VM paused while idle")):]
		if !strings.Contains(log, "VM resumed") || !strings.Contains(log, "VM stopped") || strings.Contains(log, "power button") {
			t.Errorf("stop of a VM paused while idle was not a clean shutdown after a resume:\n%s", lastLines(log, 8))
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
