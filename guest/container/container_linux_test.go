package container_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
)

func TestMain(m *testing.M) {
	if container.IsInit() {
		container.Init()
	}
	code := m.Run()
	containertest.CleanupLayers()
	os.Exit(code)
}

// newRuntime returns a runtime whose container cgroups live under a cgroup
// parent of the test's own, removed at the end.
func newRuntime(t testing.TB, opts container.Options) *container.Runtime {
	t.Helper()
	containertest.Requirements(t)
	if opts.CgroupParent == "" {
		opts.CgroupParent = "vmbox-test-" + containertest.RandHex(32)[:8]
	}
	r, err := container.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Close()
		ids, _ := r.Cgroups()
		if len(ids) > 0 {
			t.Errorf("container cgroups left behind: %v", ids)
		}
		containertest.RemoveCgroupParent(opts.CgroupParent)
	})
	return r
}

// waitExit waits for p to exit. One still running after Patience is
// killed, and the test fails with the process's signal state (a signal
// that was never delivered shows neither pending nor acted upon).
func waitExit(t testing.TB, p *container.Process, what string) (container.Exit, error) {
	t.Helper()
	go p.Wait()
	if !containertest.ClosedWithin(p.Done()) {
		state := signalState(p.Pid)
		p.Signal(syscall.SIGKILL)
		<-p.Done()
		t.Fatalf("%s: pid %d still running after %v; %s", what, p.Pid, containertest.Patience, state)
	}
	return p.Wait()
}

// signalState reports a process's signal masks from /proc.
func signalState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		k, _, _ := strings.Cut(l, ":")
		switch k {
		case "State", "NSpid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt":
			keep = append(keep, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(keep, ", ")
}

// readLine reads up to a newline from r (one byte at a time, so that
// nothing after the line is consumed), failing the test when no full line
// has arrived within Patience (r is then closed, which ends the read).
func readLine(t testing.TB, r io.ReadCloser, what string) string {
	t.Helper()
	var line []byte
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 1)
		for {
			if _, err = r.Read(b); err != nil || b[0] == '\n' {
				return
			}
			line = append(line, b[0])
		}
	}()
	if !containertest.ClosedWithin(done) {
		r.Close()
		<-done
		t.Fatalf("%s: %q after %v, no newline", what, line, containertest.Patience)
	}
	if err != nil {
		t.Fatalf("%s: %q: %v", what, line, err)
	}
	return string(line)
}

// result is what a finished container produced.
type result struct {
	exit           container.Exit
	stdout, stderr string
}

// spec returns a spec for a container on the busybox layer.
func spec(t testing.TB, args ...string) *container.Spec {
	id := containertest.RandHex(32)
	return &container.Spec{
		ID:       id,
		Dir:      filepath.Join(t.TempDir(), id),
		Layers:   []string{containertest.BusyboxLayer(t)},
		Args:     args,
		Hostname: id[:12],
		Env:      []string{"PATH=/bin"},
	}
}

// run starts s with stdin as the container's stdin (when non-nil) and
// waits for it.
func run(t testing.TB, r *container.Runtime, s *container.Spec, stdin io.Reader) (result, error) {
	t.Helper()
	s.OpenStdin = stdin != nil
	c, err := r.Start(context.Background(), s)
	if err != nil {
		return result{}, err
	}
	var res result
	var wg sync.WaitGroup
	var out, errb bytes.Buffer
	if c.Pty != nil {
		wg.Add(1)
		go func() { defer wg.Done(); io.Copy(&out, c.Pty); c.Pty.Close() }()
	} else {
		wg.Add(2)
		go func() { defer wg.Done(); io.Copy(&out, c.Stdout); c.Stdout.Close() }()
		go func() { defer wg.Done(); io.Copy(&errb, c.Stderr); c.Stderr.Close() }()
	}
	if c.Stdin != nil {
		go func() { io.Copy(c.Stdin, stdin); c.Stdin.Close() }()
	}
	res.exit, err = waitExit(t, c.Process, fmt.Sprintf("container %q", s.Args))
	copied := make(chan struct{})
	go func() { wg.Wait(); close(copied) }()
	if !containertest.ClosedWithin(copied) {
		closeAll(c.Pty, c.Stdout, c.Stderr)
		t.Fatalf("container %q exited, its output did not end within %v", s.Args, containertest.Patience)
	}
	res.stdout, res.stderr = out.String(), errb.String()
	os.RemoveAll(s.Dir)
	return res, err
}

func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if f, ok := c.(*os.File); ok && f == nil {
			continue
		}
		if c != nil {
			c.Close()
		}
	}
}

func mustRun(t testing.TB, r *container.Runtime, s *container.Spec) result {
	t.Helper()
	res, err := run(t, r, s, nil)
	if err != nil {
		t.Fatalf("run %q: %v", s.Args, err)
	}
	return res
}

func TestRunEcho(t *testing.T) {
	r := newRuntime(t, container.Options{})
	res := mustRun(t, r, spec(t, "sh", "-c", "echo out; echo err >&2; exit 3"))
	if res.exit.Code != 3 || res.stdout != "out\n" || res.stderr != "err\n" {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(res.stdout, "out") {
		t.Fatal("no output")
	}
}

func TestExitCodes(t *testing.T) {
	r := newRuntime(t, container.Options{})
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"false"}, 1},
		{[]string{"sh", "-c", "exit 3"}, 3},
	} {
		res := mustRun(t, r, spec(t, tc.args...))
		if res.exit.Code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, res.exit.Code, tc.code, res.stderr)
		}
	}
}

func TestCommandNotRunnable(t *testing.T) {
	r := newRuntime(t, container.Options{})
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"no-such-command"}, 127},
		{[]string{"/no/such/file"}, 127},
		{[]string{"/etc/passwd"}, 126}, // not executable
		{[]string{"/tmp"}, 126},        // a directory
	} {
		_, err := run(t, r, spec(t, tc.args...), nil)
		if err == nil {
			t.Errorf("%q: started", tc.args)
			continue
		}
		if got := container.ExitCode(err); got != tc.code {
			t.Errorf("%q: code %d (%v), want %d", tc.args, got, err, tc.code)
		}
	}
}

func TestStdinReachesProcess(t *testing.T) {
	r := newRuntime(t, container.Options{})
	res, err := run(t, r, spec(t, "sh", "-c", "tr a-z A-Z; echo done >&2"), strings.NewReader("hello\nworld\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.stdout != "HELLO\nWORLD\n" || res.stderr != "done\n" || res.exit.Code != 0 {
		t.Fatalf("got %+v", res)
	}
}

func TestHostnameAndPID1(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; set -- /proc/[0-9]*; echo $#")
	s.Hostname = "box-name"
	res := mustRun(t, r, s)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 || lines[0] != "box-name" || lines[1] != "1" || lines[2] != "sh -c "+s.Args[2]+" " || lines[3] != "1" {
		t.Fatalf("got %q", lines)
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "tail", "/dev/zero") // buffers an endless line
	s.Resources.Memory = 32 << 20
	res := mustRun(t, r, s)
	if res.exit.Code != 137 || !res.exit.OOMKilled {
		t.Fatalf("exit %+v, want 137 and OOMKilled", res.exit)
	}
}

func TestPidsLimit(t *testing.T) {
	r := newRuntime(t, container.Options{})
	// An inner shell forks sleepers until fork fails (busybox sh then
	// exits); the outer one counts the processes with a glob (no fork
	// needed) and exits, and PID 1's exit kills the rest.
	s := spec(t, "sh", "-c", `sh -c 'while :; do sleep 1000 & done' 2>/tmp/err; set -- /proc/[0-9]*; echo $#; read e </tmp/err; echo "$e" >&2`)
	s.Resources.PidsLimit = 20
	res := mustRun(t, r, s)
	n, err := strconv.Atoi(strings.TrimSpace(res.stdout))
	if err != nil || n > 20 || n < 15 {
		t.Fatalf("processes %q (stderr %q), want at most 20", res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "fork") {
		t.Errorf("no fork failure reported: %q", res.stderr)
	}
}

func TestNetworkModes(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags")
	res := mustRun(t, r, s)
	lines := strings.Fields(res.stdout)
	if len(lines) != 3 || lines[0] != "lo" || lines[2] != "0x9" {
		t.Fatalf("network none: %q, want only lo, up (flags 0x9)", res.stdout)
	}
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	s = spec(t, "cat", "/proc/net/dev")
	s.NetworkMode = container.NetworkHost
	res = mustRun(t, r, s)
	if ifNames(res.stdout) != ifNames(string(host)) {
		t.Fatalf("network host: %q, host has %q", ifNames(res.stdout), ifNames(string(host)))
	}
}

func ifNames(procNetDev string) string {
	var names []string
	for _, l := range strings.Split(procNetDev, "\n")[2:] {
		if n, _, ok := strings.Cut(l, ":"); ok {
			names = append(names, strings.TrimSpace(n))
		}
	}
	return strings.Join(names, ",")
}

func TestReadOnlyRootfs(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", "touch /x && echo wrote; touch /dev/shm/y && echo shm")
	s.ReadOnly = true
	res := mustRun(t, r, s)
	if strings.Contains(res.stdout, "wrote") || !strings.Contains(res.stderr, "Read-only file system") || !strings.Contains(res.stdout, "shm") {
		t.Fatalf("got %+v", res)
	}
	s = spec(t, "sh", "-c", "touch /x && echo wrote")
	if res := mustRun(t, r, s); res.stdout != "wrote\n" {
		t.Fatalf("writable rootfs: %+v", res)
	}
}

func TestCapabilitiesAndPrivileges(t *testing.T) {
	r := newRuntime(t, container.Options{})
	status := func(s *container.Spec) map[string]string {
		t.Helper()
		res := mustRun(t, r, s)
		m := map[string]string{}
		for _, l := range strings.Split(res.stdout, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.TrimSpace(v)
			}
		}
		return m
	}
	m := status(spec(t, "cat", "/proc/self/status"))
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if m[k] != "00000000a80425fb" {
			t.Errorf("%s = %s, want Docker's default 00000000a80425fb", k, m[k])
		}
	}
	if m["CapInh"] != "0000000000000000" || m["CapAmb"] != "0000000000000000" || m["NoNewPrivs"] != "1" {
		t.Errorf("CapInh %s CapAmb %s NoNewPrivs %s", m["CapInh"], m["CapAmb"], m["NoNewPrivs"])
	}
	host := map[string]string{}
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			host[k] = strings.TrimSpace(v)
		}
	}
	s := spec(t, "cat", "/proc/self/status")
	s.Privileged = true
	m = status(s)
	if m["CapBnd"] != host["CapBnd"] || m["CapEff"] != host["CapBnd"] || m["NoNewPrivs"] != "0" {
		t.Errorf("privileged: CapBnd %s CapEff %s NoNewPrivs %s, want %s and 0", m["CapBnd"], m["CapEff"], m["NoNewPrivs"], host["CapBnd"])
	}
	s = spec(t, "cat", "/proc/self/status")
	s.User = "app"
	m = status(s)
	if m["CapEff"] != "0000000000000000" || m["CapPrm"] != "0000000000000000" || m["CapBnd"] != "00000000a80425fb" {
		t.Errorf("non-root: CapEff %s CapPrm %s CapBnd %s", m["CapEff"], m["CapPrm"], m["CapBnd"])
	}
}

func TestMaskedPaths(t *testing.T) {
	r := newRuntime(t, container.Options{})
	// Masked files read empty; test those this kernel has.
	var files []string
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/interrupts"} {
		if _, err := os.Stat(p); err == nil {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		t.Fatal("none of the masked files exists on this kernel")
	}
	script := `cat ` + strings.Join(files, " ") + ` | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname && echo wrote-sys; mknod /tmp/sda b 8 0 && head -c1 /tmp/sda >/dev/null && echo read-disk; ls /dev | tr '\n' ' '`
	res := mustRun(t, r, spec(t, "sh", "-c", script))
	out := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(out) != 3 || out[0] != "0" || out[1] != "0" {
		t.Fatalf("masked paths: %q (stderr %q)", res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "domainname: Read-only file system") || !strings.Contains(res.stderr, "sda: Operation not permitted") {
		t.Errorf("read-only /proc/sys or device rules not in force: %q", res.stderr)
	}
	if got, want := out[2], "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"; got != want {
		t.Errorf("/dev holds %q, want %q", got, want)
	}
	s := spec(t, "sh", "-c", "cat "+strings.Join(files, " ")+" | wc -c; echo vmbox > /proc/sys/kernel/domainname && echo wrote-sys")
	s.Privileged = true
	res = mustRun(t, r, s)
	if !strings.Contains(res.stdout, "wrote-sys") || strings.HasPrefix(res.stdout, "0\n") {
		t.Errorf("privileged: %q %q", res.stdout, res.stderr)
	}
}

func TestUserWorkdirEnv(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", "id -u; id -g; id -G; echo $HOME; pwd; echo $FOO $HOSTNAME; echo $PATH")
	s.User = "app"
	s.WorkingDir = "/work/dir"
	s.Env = []string{"FOO=bar"}
	s.Hostname = "h1"
	res := mustRun(t, r, s)
	want := "1000\n1000\n1000 1001\n/home/app\n/work/dir\nbar h1\n" + container.DefaultPath + "\n"
	if res.stdout != want {
		t.Fatalf("got %q, want %q (stderr %q)", res.stdout, want, res.stderr)
	}
	for _, tc := range []struct{ user, want string }{
		{"1234", "1234 0 /"},
		{"1234:555", "1234 555 /"},
		{"app:root", "1000 0 /home/app"},
		{"root", "0 0 /root"},
	} {
		s := spec(t, "sh", "-c", "echo $(id -u) $(id -g) $HOME")
		s.User = tc.user
		if res := mustRun(t, r, s); strings.TrimSpace(res.stdout) != tc.want {
			t.Errorf("user %q: %q, want %q", tc.user, res.stdout, tc.want)
		}
	}
	s = spec(t, "true")
	s.User = "nosuchuser"
	if _, err := run(t, r, s, nil); err == nil || !strings.Contains(err.Error(), "nosuchuser") {
		t.Errorf("unknown user: %v", err)
	}
}

// TestEngineGODEBUGStaysOut checks that the engine's GODEBUG, which its
// containers' inits run with, does not reach the containers' processes.
func TestEngineGODEBUGStaysOut(t *testing.T) {
	t.Setenv("GODEBUG", "cpu.sse42=off")
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", `echo "[$GODEBUG]"`)
	if res := mustRun(t, r, s); res.stdout != "[]\n" {
		t.Errorf("GODEBUG in the container: %q (stderr %q)", res.stdout, res.stderr)
	}
}

func TestSignals(t *testing.T) {
	r := newRuntime(t, container.Options{})
	// PID 1 reacts only to signals it handles: this one exits 143 on TERM.
	s := spec(t, "sh", "-c", "trap 'echo got-term; exit 143' TERM; echo ready; while :; do sleep 0.05; done")
	c, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	if line := containertest.ReadFull(t, c.Stdout, 6, "ready line"); line != "ready\n" {
		t.Fatalf("read %q", line)
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exit, err := waitExit(t, c.Process, "exit on SIGTERM")
	rest := containertest.ReadAll(t, c.Stdout, "output after SIGTERM")
	c.Stdout.Close()
	c.Stderr.Close()
	if err != nil || exit.Code != 143 || rest != "got-term\n" {
		t.Fatalf("exit %+v %v, output %q", exit, err, rest)
	}
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, container.ErrNotRunning) {
		t.Errorf("signal after exit: %v", err)
	}
	// SIGKILL always works: 128+9.
	s = spec(t, "sleep", "1000")
	c, err = r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	c.Signal(syscall.SIGKILL)
	if exit, _ := waitExit(t, c.Process, "exit on SIGKILL"); exit.Code != 137 || exit.Signal != syscall.SIGKILL {
		t.Fatalf("exit %+v", exit)
	}
	c.Stdout.Close()
	c.Stderr.Close()
}

func TestExec(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sleep", "1000")
	s.Hostname = "exec-box"
	s.Resources.PidsLimit = 50
	c, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	defer func() { c.Signal(syscall.SIGKILL); waitExit(t, c.Process, "container after SIGKILL") }()

	execOut := func(es *container.ExecSpec, stdin string) (string, string, container.Exit) {
		t.Helper()
		es.OpenStdin = stdin != ""
		p, err := c.Exec(context.Background(), es)
		if err != nil {
			t.Fatalf("exec %q: %v", es.Args, err)
		}
		if p.Stdin != nil {
			go func() { io.WriteString(p.Stdin, stdin); p.Stdin.Close() }()
		}
		var errb []byte
		errDone := make(chan struct{})
		go func() { errb, _ = io.ReadAll(p.Stderr); close(errDone) }()
		out := containertest.ReadAll(t, p.Stdout, "exec's stdout")
		if !containertest.ClosedWithin(errDone) {
			p.Stderr.Close()
			t.Fatalf("exec %q: stderr did not end within %v", es.Args, containertest.Patience)
		}
		p.Stdout.Close()
		p.Stderr.Close()
		exit, err := waitExit(t, p, fmt.Sprintf("exec %q", es.Args))
		if err != nil {
			t.Fatal(err)
		}
		return out, string(errb), exit
	}
	out, _, exit := execOut(&container.ExecSpec{Args: []string{"sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; grep -E 'CapBnd|NoNewPrivs' /proc/self/status | tr -s '\\t' ' '; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; exit 5"}}, "")
	want := "exec-box\nsleep 1000 \n"
	if !strings.HasPrefix(out, want) || exit.Code != 5 {
		t.Fatalf("exec output %q exit %d, want prefix %q and 5", out, exit.Code, want)
	}
	if !strings.Contains(out, "CapBnd: 00000000a80425fb\nNoNewPrivs: 1\nlo\n") {
		t.Errorf("exec confinement: %q", out)
	}
	if pid := strings.Split(out, "\n")[2]; pid == "1" || pid == "" {
		t.Errorf("exec pid %q", pid)
	}
	// Same cgroup: the exec'd process is counted by the container's pids
	// controller (seen from the host).
	out, _, _ = execOut(&container.ExecSpec{Args: []string{"cat"}, Env: []string{"A=1"}}, "piped\n")
	if out != "piped\n" {
		t.Errorf("exec stdin: %q", out)
	}
	out, _, _ = execOut(&container.ExecSpec{Args: []string{"sh", "-c", "id -u; pwd; echo $HOME $A"}, User: "app", WorkingDir: "/made/here", Env: []string{"A=2"}}, "")
	if out != "1000\n/made/here\n/home/app 2\n" {
		t.Errorf("exec user/workdir/env: %q", out)
	}
	_, _, exit = execOut(&container.ExecSpec{Args: []string{"sh", "-c", "kill -TERM $$"}}, "")
	if exit.Code != 143 {
		t.Errorf("exec killed by TERM: %d, want 143", exit.Code)
	}
	if _, err := c.Exec(context.Background(), &container.ExecSpec{Args: []string{"nope"}}); container.ExitCode(err) != 127 {
		t.Errorf("exec of a missing command: %v", err)
	}
	c.Signal(syscall.SIGKILL)
	waitExit(t, c.Process, "container after SIGKILL")
	if _, err := c.Exec(context.Background(), &container.ExecSpec{Args: []string{"true"}}); !errors.Is(err, container.ErrNotRunning) {
		t.Errorf("exec after exit: %v", err)
	}
}

func TestTty(t *testing.T) {
	r := newRuntime(t, container.Options{})
	s := spec(t, "sh", "-c", "tty; stty size; echo $TERM; ls -l /dev/console | cut -c1")
	s.Tty = true
	s.ConsoleSize = api.TermSize{Rows: 33, Cols: 101}
	res := mustRun(t, r, s)
	if want := "/dev/pts/0\r\n33 101\r\nxterm\r\nc\r\n"; res.stdout != want {
		t.Fatalf("tty output %q, want %q", res.stdout, want)
	}
	// Resize while it runs, then exec on a terminal too.
	s = spec(t, "sh", "-c", "read x; stty size")
	s.Tty = true
	s.ConsoleSize = api.TermSize{Rows: 10, Cols: 20}
	c, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	if err := c.Resize(api.TermSize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Exec(context.Background(), &container.ExecSpec{Args: []string{"tty"}, Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	eout := containertest.ReadAll(t, p.Pty, "exec's terminal")
	p.Pty.Close()
	if exit, _ := waitExit(t, p, "exec on a terminal"); exit.Code != 0 || eout != "/dev/pts/1\r\n" {
		t.Errorf("exec tty: %q %+v", eout, exit)
	}
	io.WriteString(c.Pty, "go\n")
	out := containertest.ReadAll(t, c.Pty, "container's terminal")
	c.Pty.Close()
	waitExit(t, c.Process, "container on a terminal")
	if !strings.HasSuffix(out, "40 120\r\n") {
		t.Errorf("after resize: %q", out)
	}
}
