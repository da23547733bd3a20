package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

func TestMain(m *testing.M) {
	if container.IsInit() {
		container.Init()
	}
	if dir := os.Getenv(crashEnv); dir != "" {
		crashingEngine(dir) // never returns
	}
	code := m.Run()
	if storeDir != "" {
		store.Close()
		os.RemoveAll(storeDir)
	}
	os.Exit(code)
}

var (
	storeOnce sync.Once
	store     *image.Store
	storeDir  string
	storeErr  error
)

// testImage is busybox plus an unprivileged user, a default environment,
// working directory and command, to check how a container inherits them.
func testImage(tb testing.TB) v1.Image {
	entries := imagetest.BusyboxEntries(tb)
	entries = append(entries,
		imagetest.Entry{Name: "etc/passwd", Body: []byte(containertest.Passwd)},
		imagetest.Entry{Name: "etc/group", Body: []byte(containertest.Group)},
		imagetest.Entry{Name: "home/", Type: tar.TypeDir},
		imagetest.Entry{Name: "home/app/", Type: tar.TypeDir, Uid: 1000, Gid: 1000},
	)
	return imagetest.NewImage(tb, v1.Config{
		Env:        []string{imagetest.DefaultPath, "FOO=image", "BAR=image"},
		WorkingDir: "/srv/app",
		Cmd:        []string{"sh", "-c", "echo $FOO $BAR $(pwd) $(id -u)"},
	}, imagetest.Layer(tb, entries))
}

// images returns the image store shared by the tests, holding
// "busybox:latest" (imagetest.BusyboxImage) and "vmbox-test:latest".
func images(t testing.TB) *image.Store {
	t.Helper()
	containertest.Requirements(t)
	storeOnce.Do(func() {
		storeDir, storeErr = os.MkdirTemp("", "vmbox-engine-images-")
		if storeErr != nil {
			return
		}
		store, storeErr = image.Open(storeDir)
		if storeErr != nil {
			return
		}
		var buf bytes.Buffer
		imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{
			"busybox:latest":    imagetest.BusyboxImage(t),
			"vmbox-test:latest": testImage(t),
		})
		_, storeErr = store.Load(&buf)
	})
	if storeErr != nil {
		t.Fatalf("image store: %v", storeErr)
	}
	return store
}

func newEngine(t testing.TB, root string) *engine.Engine {
	t.Helper()
	imgs := images(t)
	parent := "vmbox-etest-" + containertest.RandHex(4)
	e, err := engine.New(engine.Options{Root: root, Images: imgs, Runtime: container.Options{CgroupParent: parent}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if n := containertest.CgroupCount(parent); n != 0 {
			t.Errorf("%d cgroups left under %s", n, parent)
		}
		containertest.RemoveCgroupParent(parent)
	})
	return e
}

type output struct {
	stdout, stderr string
	code           int
}

// runIt runs cfg attached, stdin piped when given.
func runIt(t testing.TB, e *engine.Engine, cfg api.ContainerConfig, stdin io.Reader) (output, error) {
	t.Helper()
	var out, errb bytes.Buffer
	s := engine.Streams{Stdout: &out, Stderr: &errb}
	if stdin != nil {
		s.Stdin = stdin
		cfg.OpenStdin = true
	}
	res, err := e.Run(within(t), api.RunArgs{Config: cfg}, s, nil)
	return output{out.String(), errb.String(), res.ExitCode}, err
}

func mustRunIt(t testing.TB, e *engine.Engine, cfg api.ContainerConfig) output {
	t.Helper()
	o, err := runIt(t, e, cfg, nil)
	if err != nil {
		t.Fatalf("run %v: %v", cfg.Cmd, err)
	}
	return o
}

// within returns a context for one wait, ended after Patience.
func within(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), containertest.Patience)
	t.Cleanup(cancel)
	return ctx
}

// waitFor receives a value from ch, failing the test when none arrives
// within Patience or ch is closed without one.
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(containertest.Patience)
	defer timer.Stop()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed without a value", what)
		}
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing after %v", what, containertest.Patience)
	}
	var zero T
	return zero
}

func TestRunCommands(t *testing.T) {
	e := newEngine(t, t.TempDir())
	o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", AutoRemove: true})
	if o.stdout != imagetest.BusyboxOutput+"\n" || o.code != 0 {
		t.Errorf("default command: %+v", o)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Cmd: []string{"echo", "over", "ridden"}, AutoRemove: true})
	if o.stdout != "over ridden\n" {
		t.Errorf("overridden command: %+v", o)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, AutoRemove: true})
	if o.code != 3 || o.stdout != "out\n" || o.stderr != "err\n" {
		t.Errorf("exit 3 with separate streams: %+v", o)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Entrypoint: []string{"echo", "entry"}, AutoRemove: true})
	if o.stdout != "entry\n" {
		t.Errorf("entrypoint (drops the image's command): %+v", o)
	}
	o, err := runIt(t, e, api.ContainerConfig{Image: "busybox", Cmd: []string{"tr", "a-z", "A-Z"}, AutoRemove: true}, strings.NewReader("piped in\n"))
	if err != nil || o.stdout != "PIPED IN\n" {
		t.Errorf("stdin: %+v %v", o, err)
	}
	if got := list(t, e, true); len(got) != 0 {
		t.Errorf("AutoRemove containers left: %+v", got)
	}
}

func TestImageConfigAndOverrides(t *testing.T) {
	e := newEngine(t, t.TempDir())
	o := mustRunIt(t, e, api.ContainerConfig{Image: "vmbox-test", AutoRemove: true})
	if o.stdout != "image image /srv/app 0\n" {
		t.Errorf("image env/workdir: %q %q", o.stdout, o.stderr)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "vmbox-test", Env: []string{"BAR=user", "NEW=1"}, WorkingDir: "/tmp/w", User: "app", AutoRemove: true,
		Cmd: []string{"sh", "-c", "echo $FOO $BAR $NEW $(pwd) $(id -u) $(id -G) $HOME $HOSTNAME"}})
	if want := "image user 1 /tmp/w 1000 1000 1001 /home/app "; !strings.HasPrefix(o.stdout, want) || len(strings.Fields(o.stdout)) != 9 {
		t.Errorf("overrides: %q, want prefix %q and a hostname (stderr %q)", o.stdout, want, o.stderr)
	}
	o = mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Hostname: "named", Cmd: []string{"sh", "-c", "hostname; echo $$"}, AutoRemove: true})
	if o.stdout != "named\n1\n" {
		t.Errorf("hostname and pid: %q", o.stdout)
	}
}

func TestNotRunnable(t *testing.T) {
	e := newEngine(t, t.TempDir())
	for _, tc := range []struct {
		cmd  []string
		code int
	}{
		{[]string{"no-such-command"}, 127},
		{[]string{"/etc/passwd"}, 126},
	} {
		o, err := runIt(t, e, api.ContainerConfig{Image: "busybox", Cmd: tc.cmd, AutoRemove: true}, nil)
		if err == nil || o.code != tc.code {
			t.Errorf("%v: code %d err %v, want %d", tc.cmd, o.code, err, tc.code)
		}
	}
	if got := list(t, e, true); len(got) != 0 {
		t.Errorf("AutoRemove containers left after failed starts: %+v", got)
	}
	// Without AutoRemove the failure is recorded, as Docker does.
	o, err := runIt(t, e, api.ContainerConfig{Image: "busybox", Name: "failed", Cmd: []string{"nope"}}, nil)
	if err == nil || o.code != 127 {
		t.Fatalf("code %d err %v", o.code, err)
	}
	ins, err := e.Inspect("failed")
	if err != nil || ins.State.ExitCode != 127 || !strings.Contains(ins.State.Error, "not found") {
		t.Errorf("inspect after a failed start: %+v %v", ins.State, err)
	}
	if _, err := e.Create(context.Background(), api.ContainerConfig{Image: "no-such-image", Pull: "never"}, engine.PullOptions{}); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("missing image with pull never: %v", err)
	}
}

func TestOOMKilled(t *testing.T) {
	e := newEngine(t, t.TempDir())
	o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Name: "oom", Memory: 32 << 20, Cmd: []string{"tail", "/dev/zero"}})
	if o.code != 137 {
		t.Fatalf("exit %d, want 137", o.code)
	}
	ins, err := e.Inspect("oom")
	if err != nil || !ins.State.OOMKilled || ins.State.ExitCode != 137 || ins.State.Status != "exited" {
		t.Fatalf("state %+v %v", ins.State, err)
	}
}

func TestPidsLimit(t *testing.T) {
	e := newEngine(t, t.TempDir())
	o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", PidsLimit: 20, AutoRemove: true,
		Cmd: []string{"sh", "-c", `sh -c 'while :; do sleep 1000 & done' 2>/dev/null; set -- /proc/[0-9]*; echo $#`}})
	if n, err := strconv.Atoi(strings.TrimSpace(o.stdout)); err != nil || n > 20 || n < 15 {
		t.Fatalf("processes %q, want at most 20", o.stdout)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := context.Background()
	cr, err := e.Create(ctx, api.ContainerConfig{Image: "busybox", Name: "life",
		Cmd: []string{"sh", "-c", "trap 'echo term; exit 143' TERM; echo up; while :; do sleep 0.05; done"}}, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.ID) != 64 {
		t.Fatalf("id %q", cr.ID)
	}
	if _, err := e.Create(ctx, api.ContainerConfig{Image: "busybox", Name: "life"}, engine.PullOptions{}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("duplicate name: %v", err)
	}
	ps := list(t, e, true)
	if len(ps) != 1 || ps[0].Status != "Created" || ps[0].State != "created" || ps[0].Names[0] != "/life" {
		t.Fatalf("ps: %+v", ps)
	}
	if len(list(t, e, false)) != 0 {
		t.Error("created container listed as running")
	}
	// Wait for next-exit before the start, attach, then start. (The
	// attachment must be registered before Start: Attach called in a
	// goroutine may come after the container's "up", and wait for it
	// forever.)
	waited, err := e.WaitChan(within(t), cr.ID[:10], "next-exit")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pr, pw := io.Pipe()
	attached, err := engine.AttachAsync(within(t), e, "life", engine.Streams{Stdout: io.MultiWriter(&out, pw)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, cr.ID); err != nil {
		t.Fatal(err)
	}
	if line := containertest.ReadFull(t, pr, 3, "attached output"); line != "up\n" {
		t.Fatalf("attach: %q", line)
	}
	go io.Copy(io.Discard, pr)
	ps = list(t, e, false)
	if len(ps) != 1 || !strings.HasPrefix(ps[0].Status, "Up ") || ps[0].Command != "sh -c 'trap 'echo term; exit 143' TERM; echo up; while :; do sleep 0.05; done'" {
		t.Errorf("ps running: %+v", ps)
	}
	if err := e.Remove(ctx, "life", false); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("remove running: %v", err)
	}
	if err := e.Kill(ctx, "life", "TERM"); err != nil {
		t.Fatal(err)
	}
	if r := waitFor(t, waited, "next-exit after SIGTERM"); r.StatusCode != 143 {
		t.Errorf("wait: %+v", r)
	}
	if err := waitFor(t, attached, "end of the attachment"); err != nil || out.String() != "up\nterm\n" {
		t.Errorf("attach ended: %v, output %q", err, out.String())
	}
	ins, _ := e.Inspect("life")
	if ins.State.Status != "exited" || ins.State.ExitCode != 143 || ins.State.Running || ins.Name != "/life" || ins.Path != "sh" {
		t.Errorf("inspect: %+v", ins)
	}
	if st := list(t, e, true)[0].Status; !strings.HasPrefix(st, "Exited (143) ") || !strings.HasSuffix(st, " ago") {
		t.Errorf("status %q", st)
	}
	if err := e.Kill(ctx, "life", "KILL"); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("kill exited: %v", err)
	}
	if err := e.Stop(within(t), "life", time.Second); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("stop exited: %v", err)
	}
	// Restart the exited container; wait until its trap is set.
	pr, pw = io.Pipe()
	if _, err := engine.AttachAsync(within(t), e, "life", engine.Streams{Stdout: pw}); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if line := containertest.ReadFull(t, pr, 3, "attached output after the restart"); line != "up\n" {
		t.Fatalf("attach after restart: %q", line)
	}
	go io.Copy(io.Discard, pr)
	// Stop: SIGTERM is handled (143); a process ignoring it gets SIGKILL.
	if err := e.Stop(within(t), "life", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Wait(within(t), "life", ""); err != nil || r.StatusCode != 143 {
		t.Errorf("after stop: %+v %v", r, err)
	}
	cr2, err := e.Create(ctx, api.ContainerConfig{Image: "busybox", Cmd: []string{"sleep", "1000"}}, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, cr2.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(within(t), cr2.ID, 0); err != nil { // sleep as PID 1 ignores TERM
		t.Fatal(err)
	}
	if r, err := e.Wait(within(t), cr2.ID, "not-running"); err != nil || r.StatusCode != 137 {
		t.Errorf("stop of a TERM-ignoring process: %+v %v", r, err)
	}
	removed, err := e.WaitChan(within(t), "life", "removed")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, "life", false); err != nil {
		t.Fatal(err)
	}
	if r := waitFor(t, removed, "removal"); r.StatusCode != 143 {
		t.Errorf("wait removed: %+v", r)
	}
	if _, err := e.Inspect("life"); !errors.Is(err, engine.ErrNoSuchContainer) {
		t.Errorf("inspect removed: %v", err)
	}
	// Force removal of a running container.
	if err := e.Start(ctx, cr2.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, cr2.ID[:12], true); err != nil {
		t.Fatal(err)
	}
	if len(list(t, e, true)) != 0 {
		t.Errorf("left: %+v", list(t, e, true))
	}
}

func TestNamesAndLookup(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := context.Background()
	a, err := e.Create(ctx, api.ContainerConfig{Image: "busybox"}, engine.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := e.Inspect(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(ins.Name, "/"), "_")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		t.Errorf("generated name %q", ins.Name)
	}
	for _, ref := range []string{a.ID, a.ID[:12], a.ID[:1] + a.ID[1:5], ins.Name, strings.TrimPrefix(ins.Name, "/")} {
		if got, err := e.Inspect(ref); err != nil || got.ID != a.ID {
			t.Errorf("lookup %q: %v", ref, err)
		}
	}
	if _, err := e.Inspect("nothing"); !errors.Is(err, engine.ErrNoSuchContainer) {
		t.Errorf("unknown: %v", err)
	}
	for _, bad := range []string{"-x", "a", "with space", "ok/no"} {
		if _, err := e.Create(ctx, api.ContainerConfig{Image: "busybox", Name: bad}, engine.PullOptions{}); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if !e.InUse(ins.Image) {
		t.Error("image not reported in use")
	}
	// The signal names themselves are internal/signals' tests' business.
	if err := e.Kill(ctx, "nothing", "NOPE"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("kill with signal NOPE: %v", err)
	}
}

func TestLogs(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := within(t)
	res, err := e.Run(ctx, api.RunArgs{Config: api.ContainerConfig{Image: "busybox", Name: "logger",
		Cmd: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf partial"}}}, engine.Streams{}, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	logs := func(args api.LogsArgs) (string, string) {
		t.Helper()
		var o, er bytes.Buffer
		if err := e.Logs(ctx, args, &o, &er); err != nil {
			t.Fatal(err)
		}
		return o.String(), er.String()
	}
	o, er := logs(api.LogsArgs{Container: "logger", Tail: -1})
	if o != "out1\nout2\nout3\nout4\nout5\npartial" || er != "err1\nerr2\nerr3\nerr4\nerr5\n" {
		t.Errorf("logs: %q %q", o, er)
	}
	// How stdout and stderr lines interleave depends on the pumps, so the
	// tail is checked on one stream.
	if _, err := e.Run(ctx, api.RunArgs{Config: api.ContainerConfig{Image: "busybox", Name: "tailer",
		Cmd: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"}}}, engine.Streams{}, nil); err != nil {
		t.Fatal(err)
	}
	o, er = logs(api.LogsArgs{Container: "tailer", Tail: 2})
	if o != "line4\nline5\n" || er != "" {
		t.Errorf("tail 2: %q %q", o, er)
	}
	o, _ = logs(api.LogsArgs{Container: "tailer", Tail: 1, Timestamps: true})
	ts, rest, _ := strings.Cut(o, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rest != "line5\n" {
		t.Errorf("timestamps: %q", o)
	}

	// Follow a detached container: what was logged before, then new lines
	// until it exits.
	res, err = e.Run(ctx, api.RunArgs{Detach: true, Config: api.ContainerConfig{Image: "busybox", Name: "follow", OpenStdin: true,
		Cmd: []string{"sh", "-c", "echo first; read line; echo \"got $line\"; echo bye >&2"}}}, engine.Streams{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var ferr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- e.Logs(within(t), api.LogsArgs{Container: "follow", Tail: -1, Follow: true}, pw, &ferr)
		pw.Close()
	}()
	if first := containertest.ReadFull(t, pr, 6, "followed log"); first != "first\n" {
		t.Fatalf("follow: %q", first)
	}
	// Feed the container through an attach so it goes on.
	go e.Attach(within(t), "follow", engine.Streams{Stdin: strings.NewReader("hello\n")})
	rest2 := containertest.ReadAll(t, pr, "rest of the followed log")
	if err := waitFor(t, done, "end of the followed log"); err != nil || rest2 != "got hello\n" || ferr.String() != "bye\n" {
		t.Errorf("follow rest %q %q %v", rest2, ferr.String(), err)
	}
	// Following an exited container returns at once.
	o, _ = logs(api.LogsArgs{Container: "follow", Tail: -1, Follow: true})
	if o != "first\ngot hello\n" {
		t.Errorf("follow exited: %q", o)
	}
}

func TestExec(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := within(t)
	res, err := e.Run(ctx, api.RunArgs{Detach: true, Config: api.ContainerConfig{Image: "vmbox-test", Name: "ex", Hostname: "exhost", Cmd: []string{"sleep", "1000"}}}, engine.Streams{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var o, er bytes.Buffer
	code, err := e.Exec(ctx, api.ExecArgs{Container: "ex", Cmd: []string{"sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; pwd; echo $FOO $X; echo e >&2; exit 4"}, Env: []string{"X=exec"}},
		engine.Streams{Stdout: &o, Stderr: &er})
	if err != nil || code != 4 || o.String() != "exhost\nsleep 1000 \n/srv/app\nimage exec\n" || er.String() != "e\n" {
		t.Errorf("exec: code %d err %v out %q err %q", code, err, o.String(), er.String())
	}
	o.Reset()
	code, err = e.Exec(ctx, api.ExecArgs{Container: res.ID, Cmd: []string{"cat"}, OpenStdin: true}, engine.Streams{Stdin: strings.NewReader("in\n"), Stdout: &o})
	if err != nil || code != 0 || o.String() != "in\n" {
		t.Errorf("exec stdin: %d %v %q", code, err, o.String())
	}
	code, err = e.Exec(ctx, api.ExecArgs{Container: "ex", Cmd: []string{"nope"}}, engine.Streams{})
	if err == nil || code != 127 {
		t.Errorf("exec missing command: %d %v", code, err)
	}
	if err := e.Remove(ctx, "ex", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(ctx, api.ExecArgs{Container: "ex", Cmd: []string{"true"}}, engine.Streams{}); !errors.Is(err, engine.ErrNoSuchContainer) {
		t.Errorf("exec in removed: %v", err)
	}
}

func TestTty(t *testing.T) {
	e := newEngine(t, t.TempDir())
	o := mustRunIt(t, e, api.ContainerConfig{Image: "busybox", Tty: true, ConsoleSize: [2]uint{24, 80}, AutoRemove: true, Cmd: []string{"sh", "-c", "tty; stty size; echo err >&2"}})
	if o.stdout != "/dev/pts/0\r\n24 80\r\nerr\r\n" || o.stderr != "" {
		t.Errorf("tty run: %q %q", o.stdout, o.stderr)
	}
}

func TestPullMissingImage(t *testing.T) {
	if _, err := os.Stat(imagetest.RegistryPath); err != nil {
		t.Skip("docker-registry is not installed")
	}
	e := newEngine(t, t.TempDir())
	addr := imagetest.StartRegistry(t)
	ref := addr + "/pulled/busybox:" + containertest.RandHex(4)
	imagetest.Push(t, imagetest.BusyboxImage(t), ref)
	var progress []api.PullProgress
	var mu sync.Mutex
	var out bytes.Buffer
	res, err := e.Run(context.Background(), api.RunArgs{Config: api.ContainerConfig{Image: ref, AutoRemove: true}},
		engine.Streams{Stdout: &out}, func(p api.PullProgress) { mu.Lock(); progress = append(progress, p); mu.Unlock() })
	if err != nil || res.ExitCode != 0 || out.String() != imagetest.BusyboxOutput+"\n" {
		t.Fatalf("run of a missing image: %+v %v %q", res, err, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 {
		t.Error("no pull progress")
	}
}

// crashEnv makes the test binary a short-lived engine host (see
// TestRestartShowsExited).
const crashEnv = "VMBOX_ENGINE_TEST_CRASH"

// crashingEngine opens an engine on dir, starts a detached container,
// prints its ID and waits to be killed.
func crashingEngine(spec string) {
	parts := strings.SplitN(spec, "|", 3)
	imgs, err := image.Open(parts[1])
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	e, err := engine.New(engine.Options{Root: parts[0], Images: imgs, Runtime: container.Options{CgroupParent: parts[2]}})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	res, err := e.Run(context.Background(), api.RunArgs{Detach: true, Config: api.ContainerConfig{Image: "busybox", Name: "survivor", Cmd: []string{"sleep", "1000"}}}, engine.Streams{}, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println(res.ID)
	select {}
}

func TestRestartShowsExited(t *testing.T) {
	containertest.Requirements(t)
	imgDir := t.TempDir()
	imgs, err := image.Open(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{"busybox:latest": imagetest.BusyboxImage(t)})
	if _, err := imgs.Load(&buf); err != nil {
		t.Fatal(err)
	}
	imgs.Close()
	root := t.TempDir()
	parent := "vmbox-etest-" + containertest.RandHex(4)
	defer containertest.RemoveCgroupParent(parent)

	// An engine in another process starts a container and is killed.
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+root+"|"+imgDir+"|"+parent)
	// The engine host is the init of a PID namespace of its own, as if it
	// were the machine's: the kernel kills everything it started when it
	// dies and lets it be reaped only once all of that is gone. Otherwise
	// its processes outlive the Wait below, among them a helper it was
	// forking when killed (it warms the next one as soon as a start
	// returns): cloned but not yet exec'd, that child holds a copy of the
	// host's descriptor table, the image store's lock included, until it
	// execs or dies, both of which first tear down the host's address
	// space (shared until exec), and the store would be "in use" when
	// reopened. (The host does not use /proc/<pid> paths, which would name
	// other processes than its own from this namespace.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // the test failed before killing it
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := containertest.ReadFull(t, out, 65, "container ID from the engine host")
	if strings.HasPrefix(line, "error") {
		t.Fatalf("engine host: %q", line)
	}
	id := strings.TrimSpace(line)
	cmd.Process.Kill()
	cmd.Wait()

	imgs, err = image.Open(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer imgs.Close()
	e, err := engine.New(engine.Options{Root: root, Images: imgs, Runtime: container.Options{CgroupParent: parent}})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := e.Inspect("survivor")
	if err != nil || ins.ID != id || ins.State.Running || ins.State.Status != "exited" || ins.State.ExitCode != 255 {
		t.Errorf("after restart: %+v %v", ins.State, err)
	}
	if ps := list(t, e, false); len(ps) != 0 {
		t.Errorf("running after restart: %+v", ps)
	}
	// It can run again.
	if err := e.Start(context.Background(), "survivor"); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(context.Background(), "survivor", true); err != nil {
		t.Fatal(err)
	}
	e.Idle()
	if n := containertest.CgroupCount(parent); n != 1 { // the warm helper's
		t.Errorf("%d cgroups, want only the warm helper's", n)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if n := containertest.CgroupCount(parent); n != 0 {
		t.Errorf("%d cgroups left after close", n)
	}
	// A second engine on the same directory is refused while one is open.
	e2, err := engine.New(engine.Options{Root: root, Images: imgs, Runtime: container.Options{CgroupParent: parent}})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := engine.New(engine.Options{Root: root, Images: imgs, Runtime: container.Options{CgroupParent: parent + "x"}}); err == nil {
		t.Error("two engines on one directory")
	}
}

// TestLayeredImage runs an image of two layers, the upper one deleting a
// file of the lower one (an OCI whiteout) and replacing another.
func TestLayeredImage(t *testing.T) {
	e := newEngine(t, t.TempDir())
	img := imagetest.NewImage(t, v1.Config{Env: []string{imagetest.DefaultPath}, Cmd: []string{"sh", "-c", "ls /data; cat /data/kept /data/changed"}},
		imagetest.Layer(t, append(imagetest.BusyboxEntries(t),
			imagetest.Entry{Name: "data/", Type: tar.TypeDir},
			imagetest.Entry{Name: "data/gone", Body: []byte("gone\n")},
			imagetest.Entry{Name: "data/kept", Body: []byte("kept\n")},
			imagetest.Entry{Name: "data/changed", Body: []byte("old\n")},
		)),
		imagetest.Layer(t, []imagetest.Entry{
			{Name: "data/", Type: tar.TypeDir},
			{Name: "data/.wh.gone", Body: nil},
			{Name: "data/changed", Body: []byte("new\n")},
		}))
	var buf bytes.Buffer
	ref := "layered:" + containertest.RandHex(4)
	imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{ref: img})
	if _, err := images(t).Load(&buf); err != nil {
		t.Fatal(err)
	}
	o := mustRunIt(t, e, api.ContainerConfig{Image: ref, AutoRemove: true})
	if o.stdout != "changed\nkept\nkept\nnew\n" {
		t.Errorf("layered image: %q %q", o.stdout, o.stderr)
	}
}

// list is List without filters.
func list(t testing.TB, e *engine.Engine, all bool) []api.ContainerSummary {
	t.Helper()
	ps, err := e.List(api.PsArgs{All: all})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return ps
}
