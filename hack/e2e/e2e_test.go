// Package e2e holds the end-to-end tests: they build the vmbox binaries,
// boot real VMs from the built guest image under QEMU (TCG on machines
// without KVM), and drive them through the CLI as a user would.
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
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env is one test's view of vmbox: its binary, image and VMBOX_HOME.
type env struct {
	t     testing.TB
	bin   string
	home  string
	image string
	extra []string
}

var builtBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmbox-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	builtBinary = filepath.Join(dir, "vmbox")
	for _, b := range []string{"vmbox", "vmbox-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, b), "github.com/vmbox/vmbox/cmd/"+b)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// imageDir is the built guest image, or "" when it has not been built.
func imageDir() string {
	d := os.Getenv("VMBOX_IMAGE_DIR")
	if d == "" {
		d = filepath.Join(repoRoot(), "build", "image", runtime.GOARCH)
	}
	if _, err := os.Stat(filepath.Join(d, "kernel")); err != nil {
		return ""
	}
	return d
}

func newEnv(t *testing.T) *env {
	t.Helper()
	img := imageDir()
	if img == "" {
		t.Skip("no guest image: run `make image` first (CI always builds it)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil && runtime.GOARCH == "amd64" {
		t.Skip("qemu-system-x86_64 is not installed (make deps installs it)")
	}
	e := newEnvNoVM(t)
	e.image = img
	return e
}

// newEnvNoVM is an environment for tests that need no guest image.
func newEnvNoVM(t *testing.T) *env {
	t.Helper()
	// A short home keeps Unix socket paths under the 108-byte limit.
	home, err := os.MkdirTemp("", "vmbox-e2e")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, bin: builtBinary, home: home}
	t.Cleanup(func() {
		// Never leave a VM behind, whatever the test did.
		if insts, _ := os.ReadDir(home); insts != nil {
			for _, i := range insts {
				e.run("delete", "--name", i.Name(), "--timeout", "5s")
			}
		}
		os.RemoveAll(home)
	})
	return e
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.bin, args...)
	// DOCKER_CONFIG: start writes a docker CLI context; never the user's.
	c.Env = append(os.Environ(), "VMBOX_HOME="+e.home, "VMBOX_IMAGE_DIR="+e.image, "DOCKER_CONFIG="+filepath.Join(e.home, "docker-config"))
	c.Env = append(c.Env, e.extra...)
	return c
}

func (e *env) run(args ...string) result {
	return e.runStdin("", args...)
}

func (e *env) runStdin(stdin string, args ...string) result {
	return e.runFile(strings.NewReader(stdin), args...)
}

// runFile runs vmbox with stdin read from r.
func (e *env) runFile(r io.Reader, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	c.Stdin = r
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run vmbox %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must runs vmbox and fails the test unless it exits 0.
func (e *env) must(args ...string) result {
	e.t.Helper()
	return e.mustStdin("", args...)
}

// mustStdin is must with stdin.
func (e *env) mustStdin(stdin string, args ...string) result {
	e.t.Helper()
	r := e.runStdin(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("vmbox %s: %s\nconsole log tail:\n%s", strings.Join(args, " "), r, e.consoleTail(args))
	}
	return r
}

func (e *env) consoleTail(args []string) string {
	name := "default"
	for i, a := range args {
		if a == "--name" && i+1 < len(args) {
			name = args[i+1]
		}
	}
	b, _ := os.ReadFile(filepath.Join(e.home, name, "console.log"))
	h, _ := os.ReadFile(filepath.Join(e.home, name, "hostproc.log"))
	tail := func(b []byte) string {
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		return string(b)
	}
	return tail(b) + "\nhost process log:\n" + tail(h)
}

type status struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Driver     string `json:"driver"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	MemoryMiB  int    `json:"memoryMiB"`
	DiskGiB    int    `json:"diskGiB"`
	DockerHost string `json:"dockerHost"`
	// HypervisorState is set while the agent is silent and the
	// hypervisor does not run the guest.
	HypervisorState string `json:"hypervisorState"`
	// IdlePausedSince is set while the host process holds the VM paused
	// because nothing used it.
	IdlePausedSince *time.Time `json:"idlePausedSince"`
	Hint            string     `json:"hint"`
}

func (e *env) status(name string) status {
	e.t.Helper()
	r := e.must("status", "--name", name, "--format", "json")
	var s status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		e.t.Fatalf("status json: %v\n%s", err, r.stdout)
	}
	return s
}

func (e *env) bootInfo(name string) (hostPid, hvPid int) {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, name, "boot.json"))
	if err != nil {
		e.t.Fatalf("boot marker: %v", err)
	}
	var bi struct {
		Pid           int `json:"pid"`
		HypervisorPid int `json:"hypervisorPid"`
	}
	json.Unmarshal(b, &bi)
	return bi.Pid, bi.HypervisorPid
}

// waitState polls status until the instance reaches state.
func (e *env) waitState(name, state string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if e.status(name).State == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("instance %s never became %s", name, state)
}

// TestVMLifecycle runs for every guest architecture whose image is built:
// the host's own (amd64 here, KVM when available) and arm64 (emulated).
func TestVMLifecycle(t *testing.T) {
	for _, arch := range []string{runtime.GOARCH, otherArch()} {
		t.Run(arch, func(t *testing.T) { vmLifecycle(t, arch) })
	}
}

func otherArch() string {
	if runtime.GOARCH == "amd64" {
		return "arm64"
	}
	return "amd64"
}

// archEnv is newEnv for a guest of arch, skipped when its image or QEMU
// binary is absent (make test builds both images; make deps installs both).
func archEnv(t *testing.T, arch string) *env {
	t.Helper()
	if arch == runtime.GOARCH {
		return newEnv(t)
	}
	img := filepath.Join(repoRoot(), "build", "image", arch)
	if _, err := os.Stat(filepath.Join(img, "kernel")); err != nil {
		t.Skipf("no %s guest image: run `make image ARCH=%s` first (make test builds it)", arch, arch)
	}
	qemu := map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch]
	if _, err := exec.LookPath(qemu); err != nil {
		t.Skipf("%s is not installed (make deps installs it)", qemu)
	}
	e := newEnvNoVM(t)
	e.image = img
	return e
}

func vmLifecycle(t *testing.T, arch string) {
	e := archEnv(t, arch)
	const name = "life"
	r := e.must("start", "--name", name, "--arch", arch, "--cpus", "2", "--memory", "1GiB", "--disk", "4GiB")
	if !strings.Contains(r.stderr+r.stdout, "running") {
		t.Errorf("start said: %s", r)
	}
	// The Docker API answers as soon as start has returned: the engine
	// opens after the start, and until then its socket holds clients.
	if arch == runtime.GOARCH {
		cli := dockerClient{t: t, bin: dockerCLIs["cli28"], host: e.status(name).DockerHost, cfg: t.TempDir()}
		if r := cli.must("version", "--format", "{{.Server.Os}}"); r.stdout != "linux\n" {
			t.Errorf("docker version right after start: %s", r)
		}
	}
	if r := e.must("start", "--name", name); !strings.Contains(r.stdout, "already running") {
		t.Errorf("second start: %s", r)
	}
	s := e.status(name)
	if s.State != "running" || s.CPUs != 2 || s.MemoryMiB != 1024 || s.DiskGiB != 4 || s.Driver != "qemu" || s.Arch != arch {
		t.Errorf("status: %+v", s)
	}

	v := e.must("version", "--name", name).stdout
	for _, want := range []string{
		"Client:", "OS/Arch:      " + runtime.GOOS + "/" + runtime.GOARCH, "Context:      " + name,
		"Server: vmbox (" + name + ")", "OS/Arch:     linux/" + arch, "Kernel:      6.",
	} {
		if !strings.Contains(v, want) {
			t.Errorf("version output lacks %q:\n%s", want, v)
		}
	}
	if out := e.must("shell", "--name", name, "--", "uname", "-s").stdout; out != "Linux\n" {
		t.Errorf("uname -s = %q", out)
	}
	machine := map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"}[arch]
	if out := e.must("shell", "--name", name, "--", "uname", "-m").stdout; out != machine {
		t.Errorf("uname -m = %q, want %q", out, machine)
	}
	if r := e.run("shell", "--name", name, "--", "sh", "-c", "echo to-err >&2; exit 7"); r.code != 7 || r.stderr != "to-err\n" {
		t.Errorf("shell exit code / stderr: %s", r)
	}
	if out := e.runStdin("piped\n", "shell", "--name", name, "--", "cat").stdout; out != "piped\n" {
		t.Errorf("stdin through shell: %q", out)
	}
	// The late modules (loaded once the host has connected) give the guest
	// its power button (x86 only: Debian's arm64 cloud kernel has no
	// gpio-keys) and a balloon with free page reporting
	// (VIRTIO_BALLOON_F_REPORTING, feature bit 5).
	late := `for i in $(seq 100); do [ -d /sys/module/virtio_balloon ] && [ -d /sys/module/evdev ] && break; sleep 0.1; done
grep -l -i power /sys/class/input/*/name >/dev/null && echo power-button
cut -c6 /sys/bus/virtio/drivers/virtio_balloon/*/features`
	want := "power-button\n1\n"
	if arch == "arm64" {
		want = "1\n"
	}
	if out := e.must("shell", "--name", name, "--", "sh", "-c", late).stdout; out != want {
		t.Errorf("power button and free page reporting: %q, want %q", out, want)
	}

	// Data on the data disk survives a stop and start.
	e.must("shell", "--name", name, "--", "sh", "-c", "echo kept > /var/lib/vmbox/marker && sync")
	e.must("stop", "--name", name)
	if s := e.status(name); s.State != "stopped" {
		t.Fatalf("after stop: %+v", s)
	}
	if r := e.run("version", "--name", name); r.code != 1 || !strings.Contains(r.stdout, "Client:") || !strings.Contains(r.stderr, "vmbox start") {
		t.Errorf("version of a stopped instance: %s", r)
	}
	e.must("start", "--name", name)
	if out := e.must("shell", "--name", name, "--", "cat", "/var/lib/vmbox/marker").stdout; out != "kept\n" {
		t.Errorf("marker after restart = %q", out)
	}

	e.must("delete", "--name", name)
	if _, err := os.Stat(filepath.Join(e.home, name)); !os.IsNotExist(err) {
		t.Errorf("instance directory still there after delete: %v", err)
	}
}

func TestVMFaults(t *testing.T) {
	e := newEnv(t)
	const name = "faults"
	// A stop right after the first start must not cut the first format of
	// the data disk short: the next start finds a usable disk.
	e.must("start", "--name", name, "--memory", "1GiB", "--disk", "2GiB")
	e.must("stop", "--name", name)
	e.must("start", "--name", name)

	// kill -9 of the hypervisor: the instance is stopped, and starts again.
	_, hv := e.bootInfo(name)
	if hv <= 0 {
		t.Fatal("no hypervisor pid recorded")
	}
	syscall.Kill(hv, syscall.SIGKILL)
	e.waitState(name, "stopped")
	e.must("start", "--name", name)
	if out := e.must("shell", "--name", name, "--", "echo", "back").stdout; out != "back\n" {
		t.Errorf("after restart: %q", out)
	}

	// kill -9 of the host process leaves its pid file and socket behind;
	// they must not block the next start.
	host, _ := e.bootInfo(name)
	syscall.Kill(host, syscall.SIGKILL)
	e.waitState(name, "stopped")
	for _, f := range []string{"hostproc.pid", "vmbox.sock"} {
		if _, err := os.Stat(filepath.Join(e.home, name, f)); err != nil {
			t.Logf("note: %s not left behind (%v)", f, err)
		}
	}
	e.must("start", "--name", name)
	e.must("stop", "--name", name)
}

func TestMissingQEMUNamesThePackage(t *testing.T) {
	e := newEnv(t)
	e.extra = []string{"VMBOX_QEMU=/nonexistent/qemu-system-x86_64"}
	r := e.run("start", "--name", "noqemu")
	if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "qemu-system") {
		t.Fatalf("want one line naming the package: %s", r)
	}
}
