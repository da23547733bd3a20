package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// target is where container commands go: a local agent (--host) or a VM.
type target struct {
	e    *env
	args []string // global flags that select the target
	reg  string   // the registry as the engine reaches it
	// hostReg is the registry as this process reaches it (for pushes).
	hostReg string
}

func (tg *target) run(args ...string) result {
	return tg.e.run(append(append([]string{}, tg.args...), args...)...)
}

func (tg *target) runStdin(stdin string, args ...string) result {
	return tg.e.runStdin(stdin, append(append([]string{}, tg.args...), args...)...)
}

// pushTestImages starts a registry on loopback and pushes the test images.
func pushTestImages(t *testing.T) string {
	reg := imagetest.StartRegistry(t)
	imagetest.Push(t, imagetest.BusyboxImage(t), reg+"/busybox:latest")
	imagetest.Push(t, imagetest.HelloImage(t), reg+"/hello:latest")
	return reg
}

// localAgent runs vmbox-agent in local mode on this host, as root, and
// returns the target that reaches it.
func localAgent(t *testing.T) *target {
	if os.Geteuid() != 0 {
		t.Skip("the engine runs containers as root; run the tests as root (CI does)")
	}
	e := newEnvNoVM(t)
	e.must("create", "--name", "local", "--disk", "1GiB")
	dir := filepath.Join(e.home, "local")
	agentBin := filepath.Join(filepath.Dir(builtBinary), "vmbox-agent")
	socket := filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, agentBin, "--listen", "unix://"+socket,
		"--host-key", filepath.Join(dir, "ssh_host_ed25519"),
		"--authorized-key", filepath.Join(dir, "id_ed25519.pub"),
		"--data-dir", filepath.Join(dir, "data"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if i > 500 {
			t.Fatalf("agent did not listen:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// run's --name is the container's, as in docker run; the instance
	// (whose keys reach the agent) is chosen by environment.
	e.extra = append(e.extra, "VMBOX_INSTANCE=local")
	return &target{e: e, args: []string{"--host", "unix://" + socket}}
}

func TestContainersLocalAgent(t *testing.T) {
	tg := localAgent(t)
	tg.reg = pushTestImages(t)
	tg.hostReg = tg.reg
	containerCases(t, tg)
}

// containerCases are what a user does with containers, checked through the
// CLI → agent → engine path.
func containerCases(t *testing.T, tg *target) {
	bb := tg.reg + "/busybox"
	t.Run("default command pulls and runs", func(t *testing.T) {
		r := tg.run("run", "--rm", bb)
		if r.code != 0 || r.stdout != imagetest.BusyboxOutput+"\n" {
			t.Fatalf("%s", r)
		}
		if !strings.Contains(r.stderr, "Unable to find image") {
			t.Errorf("no pull notice on stderr: %q", r.stderr)
		}
		// Cached now: no pull the second time.
		if r := tg.run("run", "--rm", bb); r.code != 0 || strings.Contains(r.stderr, "Unable to find") {
			t.Fatalf("second run: %s", r)
		}
	})
	t.Run("single binary image", func(t *testing.T) {
		r := tg.run("run", "--rm", tg.reg+"/hello", "a", "b")
		if r.code != 0 || !strings.Contains(r.stdout, imagetest.HelloOutput) || !strings.Contains(r.stdout, "a b") {
			t.Fatalf("%s", r)
		}
	})
	cases := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"overridden command", "", []string{bb, "echo", "hi"}, 0, "hi\n", ""},
		{"tmpfs on a read-only root", "", []string{"--read-only", "--tmpfs", "/scratch:size=1m", bb, "sh", "-c", "echo x > /scratch/f && grep -c ' /scratch tmpfs ' /proc/mounts"}, 0, "1\n", ""},
		{"exit code", "", []string{bb, "sh", "-c", "exit 3"}, 3, "", ""},
		{"stdin with -i", "piped\n", []string{"-i", bb, "cat"}, 0, "piped\n", ""},
		{"stdout and stderr apart", "", []string{bb, "sh", "-c", "echo out; echo err >&2"}, 0, "out\n", "err\n"},
		{"hostname and pid 1", "", []string{"--hostname", "boxy", bb, "sh", "-c", "hostname; echo $$"}, 0, "boxy\n1\n", ""},
		{"network none has only loopback", "", []string{"--network", "none", bb, "sh", "-c", "ls /sys/class/net"}, 0, "lo\n", ""},
		{"env and workdir", "", []string{"-e", "A=1", "-w", "/tmp/wd", bb, "sh", "-c", "echo $A $(pwd)"}, 0, "1 /tmp/wd\n", ""},
		{"user", "", []string{"-u", "nobody", bb, "id", "-u"}, 0, "65534\n", ""},
		{"memory limit kills with 137", "", []string{"--memory", "32m", bb, "sh", "-c", "tail /dev/zero"}, 137, "", ""},
		{"not found is 127", "", []string{bb, "no-such-binary"}, 127, "", ""},
		{"not executable is 126", "", []string{bb, "/etc/passwd"}, 126, "", ""},
		{"read-only rootfs", "", []string{"--read-only", bb, "sh", "-c", "touch /x 2>/dev/null || echo refused"}, 0, "refused\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tg.runStdin(tc.stdin, append([]string{"run", "--rm"}, tc.args...)...)
			if r.code != tc.wantCode || (tc.wantOut != "" || tc.wantCode == 0) && r.stdout != tc.wantOut || tc.wantErr != "" && r.stderr != tc.wantErr {
				t.Fatalf("got %s\nwant exit %d stdout %q stderr %q", r, tc.wantCode, tc.wantOut, tc.wantErr)
			}
		})
	}
	t.Run("Ctrl-C reaches the container", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := tg.e.cmd(ctx, append(append([]string{}, tg.args...), "run", "--rm", bb, "sh", "-c",
			`trap "echo got-int; exit 130" INT; echo ready; while :; do sleep 0.1; done`)...)
		var out bytes.Buffer
		pr, pw, _ := os.Pipe()
		cmd.Stdout = pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		buf := make([]byte, 6)
		if _, err := io.ReadFull(pr, buf); err != nil || string(buf) != "ready\n" {
			t.Fatalf("container did not start: %q %v", buf, err)
		}
		cmd.Process.Signal(os.Interrupt)
		io.Copy(&out, pr)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || out.String() != "got-int\n" {
			t.Fatalf("exit %v output %q", err, out.String())
		}
	})
	t.Run("kill ends a container with 128+N", func(t *testing.T) {
		r := tg.run("run", "-d", bb, "sleep", "300")
		id := strings.TrimSpace(r.stdout)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		if k := tg.run("kill", id); k.code != 0 {
			t.Fatalf("kill: %s", k)
		}
		waitFor(t, func() bool { return strings.Contains(tg.run("ps", "-a").stdout, "Exited (137)") })
		tg.run("rm", id)
	})
	t.Run("labels and ps filters", func(t *testing.T) {
		r := tg.run("run", "-d", "--name", "lab1", "--label", "app=e2e", "-l", "tier=front", bb, "sleep", "300")
		if r.code != 0 {
			t.Fatalf("run -d --label: %s", r)
		}
		id1 := strings.TrimSpace(r.stdout)
		defer tg.run("rm", "-f", "lab1")
		r = tg.run("run", "--name", "lab2", "--label", "app=e2e", bb, "sh", "-c", "exit 4")
		if r.code != 4 {
			t.Fatalf("run --label, exit 4: %s", r)
		}
		defer tg.run("rm", "-f", "lab2")
		idsOf := func(args ...string) string {
			t.Helper()
			r := tg.run(append([]string{"ps", "-q"}, args...)...)
			if r.code != 0 {
				t.Fatalf("ps %v: %s", args, r)
			}
			return strings.Join(strings.Fields(r.stdout), " ")
		}
		if got := idsOf("--filter", "label=app=e2e"); got != id1[:12] {
			t.Errorf("running with app=e2e: %q, want %s", got, id1[:12])
		}
		if got := idsOf("-a", "--filter", "label=app=e2e", "--filter", "label=tier=front"); got != id1[:12] {
			t.Errorf("app=e2e and tier=front: %q", got)
		}
		if got := idsOf("--filter", "label=app=e2e", "--filter", "exited=4"); got == "" || strings.Contains(got, id1[:12]) {
			t.Errorf("exited=4 with app=e2e: %q", got)
		}
		if got := idsOf("-a", "--filter", "name=^lab1$", "--filter", "status=running"); got != id1[:12] {
			t.Errorf("name and status: %q", got)
		}
		var ps []api.ContainerSummary
		if r := tg.run("ps", "--filter", "name=lab1", "--format", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &ps) != nil || len(ps) != 1 || ps[0].Labels["tier"] != "front" {
			t.Errorf("ps --format json labels: %s", r)
		}
		if r := tg.run("ps", "--filter", "colour=red"); r.code != 125 || strings.TrimSpace(r.stderr) != "vmbox: invalid filter 'colour'" {
			t.Errorf("unknown filter: %s", r)
		}
	})
	t.Run("pids limit stops a fork bomb", func(t *testing.T) {
		r := tg.run("run", "--rm", "--pids-limit", "20", bb, "sh", "-c",
			"i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done; echo spawned")
		if !strings.Contains(r.stderr, "fork") && !strings.Contains(r.stderr, "Resource temporarily unavailable") {
			t.Fatalf("forks were not refused: %s", r)
		}
	})
	t.Run("detached, logs, exec, stop, rm", func(t *testing.T) {
		r := tg.run("run", "-d", "--name", "bg", bb, "sh", "-c", "echo started; echo to-err >&2; exec sleep 300")
		if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 64 {
			t.Fatalf("run -d: %s", r)
		}
		waitFor(t, func() bool { return strings.Contains(tg.run("logs", "bg").stdout, "started") })
		if l := tg.run("logs", "bg"); l.stdout != "started\n" || l.stderr != "to-err\n" {
			t.Errorf("logs: %s", l)
		}
		if x := tg.run("exec", "bg", "hostname"); x.code != 0 || strings.TrimSpace(x.stdout) == "" {
			t.Errorf("exec: %s", x)
		}
		if x := tg.run("exec", "bg", "sh", "-c", "exit 4"); x.code != 4 {
			t.Errorf("exec exit code: %s", x)
		}
		if ps := tg.run("ps"); !strings.Contains(ps.stdout, "bg") || !strings.Contains(ps.stdout, "Up ") {
			t.Errorf("ps: %s", ps)
		}
		if s := tg.run("stop", "-t", "1", "bg"); s.code != 0 {
			t.Errorf("stop: %s", s)
		}
		if ps := tg.run("ps", "-a"); !strings.Contains(ps.stdout, "Exited (") {
			t.Errorf("ps -a after stop: %s", ps)
		}
		if rm := tg.run("rm", "bg"); rm.code != 0 {
			t.Errorf("rm: %s", rm)
		}
		if ps := tg.run("ps", "-a"); strings.Contains(ps.stdout, "bg") {
			t.Errorf("container still listed after rm: %s", ps)
		}
	})
	t.Run("bad input gives one line and a non-zero exit", func(t *testing.T) {
		before := tg.run("images").stdout
		for _, args := range [][]string{
			{"run", "--rm", "Bad::Ref"},
			{"run", "--rm", tg.reg + "/no-such-image"},
			{"run", "--no-such-flag", bb},
			{"rm", "no-such-container"},
			{"rmi", "no-such-image"},
		} {
			r := tg.run(args...)
			if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 || strings.TrimSpace(r.stderr) == "" {
				t.Errorf("vmbox %v: %s", args, r)
			}
		}
		corrupt := filepath.Join(t.TempDir(), "corrupt.tar")
		os.WriteFile(corrupt, []byte("this is not a tar archive at all"), 0o600)
		if r := tg.run("load", "-i", corrupt); r.code == 0 || strings.TrimSpace(r.stderr) == "" {
			t.Errorf("load of a corrupt archive: %s", r)
		}
		if after := tg.run("images").stdout; after != before {
			t.Errorf("image store changed by failed commands:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	t.Run("save and load round trip", func(t *testing.T) {
		archive := filepath.Join(t.TempDir(), "bb.tar")
		if r := tg.run("save", "-o", archive, bb); r.code != 0 {
			t.Fatalf("save: %s", r)
		}
		if r := tg.run("rmi", bb); r.code != 0 {
			t.Fatalf("rmi: %s", r)
		}
		if r := tg.run("load", "-i", archive); r.code != 0 || !strings.Contains(r.stdout, "Loaded image") {
			t.Fatalf("load: %s", r)
		}
		if r := tg.run("run", "--rm", "--pull", "never", bb, "echo", "loaded"); r.stdout != "loaded\n" {
			t.Fatalf("run loaded image: %s", r)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(fmt.Errorf("condition not met in 10s"))
}
