package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// vmTarget boots an instance and returns the target that reaches it, with
// the test registry addressed as the guest sees the host.
func vmTarget(t *testing.T, name string) (*target, string) {
	e := newEnv(t)
	reg := pushTestImages(t)
	e.extra = append(e.extra, "VMBOX_INSTANCE="+name)
	e.must("start", "--memory", "1GiB", "--disk", "4GiB")
	port := reg[strings.LastIndex(reg, ":")+1:]
	return &target{e: e, reg: "host.vmbox.internal:" + port, hostReg: reg}, reg
}

func TestContainersThroughVM(t *testing.T) {
	tg, _ := vmTarget(t, "ctr")
	containerCases(t, tg)
	networkCases(t, tg, "ctr")
	t.Run("volumes", func(t *testing.T) { volumeCases(t, tg) })
	t.Run("host folders", func(t *testing.T) { hostFolderCases(t, tg) })
	t.Run("build", func(t *testing.T) { buildCases(t, tg) })
	t.Run("login", func(t *testing.T) { loginCases(t, tg) })
	t.Run("tag and push, pulled back with the same digest", func(t *testing.T) {
		dst := tg.reg + "/pushed/vmbox:v1"
		if r := tg.run("tag", tg.reg+"/busybox", dst); r.code != 0 {
			t.Fatalf("tag: %s", r)
		}
		r := tg.run("push", dst)
		i := strings.Index(r.stdout, "v1: digest: ")
		if r.code != 0 || i < 0 {
			t.Fatalf("push: %s", r)
		}
		digest := strings.Fields(r.stdout[i+len("v1: digest: "):])[0]
		// A fresh instance, which has never seen the image, pulls it back
		// with the same digest.
		// One CPU: the agent once deadlocked there when a process it
		// started touched a host folder before its exec was done (a
		// command that lives in one, or a working directory in one).
		// --mount-type sftp: host folders' contents over the agent's
		// channel alone, as QEMU as another user, on macOS and on Windows
		// has them.
		tg.e.must("start", "--name", "fresh", "--cpus", "1", "--memory", "512MiB", "--disk", "2GiB", "--mount-type", "sftp")
		defer tg.e.run("delete", "--name", "fresh", "--timeout", "10s")
		folder := t.TempDir()
		script := filepath.Join(folder, "hello.sh")
		os.WriteFile(script, []byte("#!/bin/sh\necho from a host folder\necho written > \"$(dirname \"$0\")/out\"\n"), 0o755)
		if r := tg.e.run("shell", "--name", "fresh", "--", script); r.code != 0 || r.stdout != "from a host folder\n" {
			t.Errorf("a command in a host folder on a one-CPU VM: %s", r)
		}
		if b, err := os.ReadFile(filepath.Join(folder, "out")); string(b) != "written\n" {
			t.Errorf("a file written over SFTP alone: %q, %v", b, err)
		}
		if r := tg.e.run("status", "--name", "fresh"); !strings.Contains(r.stdout, "shared folder: "+os.TempDir()+" (rw, sftp)") {
			t.Errorf("status of an instance with --mount-type sftp: %s", r)
		}
		if r := tg.e.run("pull", "--name", "fresh", dst); r.code != 0 || !strings.Contains(r.stdout, "Digest: "+digest) {
			t.Errorf("pull into a fresh instance: %s (want digest %s)", r, digest)
		}
		tg.e.must("stop", "--name", "fresh")
		if r := tg.run("push", tg.reg+"/nosuch:v1"); r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("push of a missing image: %s", r)
		}
	})
	t.Run("Docker API", func(t *testing.T) { dockerAPICases(t, tg) })

	// A folder shared read-only from the next start, inside the default
	// read-write share of the temporary directory.
	roDir := t.TempDir()
	if err := os.WriteFile(roDir+"/f", []byte("shared read-only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("image cache survives stop and start", func(t *testing.T) {
		host := dockerHost(t, tg.e)
		if r := tg.e.must("start", "--mount", roDir+":ro"); !strings.Contains(r.stdout+r.stderr, "next start") {
			t.Errorf("start --mount on a running instance must say it needs a restart: %s", r)
		}
		tg.e.must("stop")
		// As with Docker Desktop stopped: the socket is gone.
		if r := (dockerClient{t: t, bin: dockerCLIs["cli28"], host: host, cfg: t.TempDir()}).run("", "version"); r.code == 0 || !strings.Contains(r.stderr, "docker.sock") {
			t.Errorf("docker version with the VM stopped: %s", r)
		}
		tg.e.must("start")
		if r := tg.run("images"); !strings.Contains(r.stdout, tg.reg+"/busybox") {
			t.Fatalf("images after restart: %s", r)
		}
		r := tg.run("run", "--rm", "--pull", "never", tg.reg+"/busybox", "echo", "cached")
		if r.stdout != "cached\n" || strings.Contains(r.stderr, "Unable to find") {
			t.Fatalf("run after restart: %s", r)
		}
		// The volume the volume cases wrote survives the VM too.
		if r := tg.run("run", "--rm", "-v", "e2edata:/data", tg.reg+"/busybox", "cat", "/data/f"); r.stdout != "kept\n" {
			t.Errorf("volume after restart: %s", r)
		}
		r = tg.run("run", "--rm", "-v", roDir+":/ro", tg.reg+"/busybox", "sh", "-c", "cat /ro/f; touch /ro/x")
		if r.code == 0 || r.stdout != "shared read-only\n" || !strings.Contains(r.stderr, "Read-only file system") {
			t.Errorf("a --mount DIR:ro folder after the restart: %s", r)
		}
	})
	t.Run("a published container started again after a VM restart serves again", func(t *testing.T) {
		restartedPortCases(t, tg)
	})
	t.Run("networks survive a VM restart", func(t *testing.T) {
		if r := tg.run("network", "create", "--subnet", "172.29.0.0/16", "kept"); r.code != 0 {
			t.Fatalf("network create: %s", r)
		}
		tg.e.must("stop")
		tg.e.must("start")
		r := tg.run("network", "inspect", "kept")
		if r.code != 0 || !strings.Contains(r.stdout, "172.29.0.0/16") {
			t.Fatalf("network inspect after restart: %s", r)
		}
		if r := tg.run("run", "--rm", "--network", "kept", tg.reg+"/busybox", "true"); r.code != 0 {
			t.Fatalf("run on the kept network: %s", r)
		}
		tg.run("network", "rm", "kept")
	})
	t.Run("run -it through a terminal", func(t *testing.T) {
		out, code := runInPTY(t, tg.e, 30, 100, "stty size; tty; exit 5\n", "run", "-it", "--rm", tg.reg+"/busybox", "sh")
		if code != 5 || !strings.Contains(out, "30 100") || !strings.Contains(out, "/dev/pts/") {
			t.Fatalf("exit %d, terminal output %q", code, out)
		}
	})
}

func TestRunStartsTheVM(t *testing.T) {
	e := newEnv(t)
	reg := pushTestImages(t)
	port := reg[strings.LastIndex(reg, ":")+1:]
	e.extra = append(e.extra, "VMBOX_INSTANCE=auto")
	e.must("create", "--memory", "1GiB", "--disk", "2GiB")
	if r := e.run("run", "--rm", "--no-start", "host.vmbox.internal:"+port+"/busybox"); r.code == 0 || !strings.Contains(r.stderr, "vmbox start") {
		t.Fatalf("--no-start on a stopped VM: %s", r)
	}
	r := e.run("run", "--rm", "host.vmbox.internal:"+port+"/busybox", "echo", "hi")
	if r.code != 0 || r.stdout != "hi\n" || !strings.Contains(r.stderr, "starting it") {
		t.Fatalf("run on a stopped VM: %s", r)
	}
}

// TestPullSurvivesHypervisorCrash kills QEMU in the middle of a pull; after
// the next start the store lists no partial image and the pull completes.
func TestPullSurvivesHypervisorCrash(t *testing.T) {
	tg, reg := vmTarget(t, "crash")
	// A layer large enough that the pull is still running when QEMU dies.
	big := make([]byte, 48<<20)
	rand.Read(big)
	img := imagetest.NewImage(t, v1.Config{Env: []string{imagetest.DefaultPath}}, imagetest.Layer(t, imagetest.BusyboxEntries(t)),
		imagetest.Layer(t, []imagetest.Entry{{Name: "big.bin", Mode: 0o644, Body: big}}))
	imagetest.Push(t, img, reg+"/big:latest")
	ref := tg.reg + "/big"

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pull := tg.e.cmd(ctx, "pull", ref)
	stdout, _ := pull.StdoutPipe()
	if err := pull.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen bytes.Buffer
	for !strings.Contains(seen.String(), "Download") && !strings.Contains(seen.String(), "Extracting") {
		n, err := stdout.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("pull ended before it could be interrupted: %q %v", seen.String(), err)
		}
	}
	_, hv := tg.e.bootInfo("crash")
	syscall.Kill(hv, syscall.SIGKILL)
	pull.Wait()
	tg.e.waitState("crash", "stopped")

	tg.e.must("start")
	if r := tg.run("images"); strings.Contains(r.stdout, "/big") {
		t.Fatalf("a partial image is listed after the crash: %s", r)
	}
	if r := tg.run("pull", ref); r.code != 0 {
		t.Fatalf("pull after crash: %s", r)
	}
	if r := tg.run("run", "--rm", ref, "sh", "-c", "wc -c < /big.bin"); strings.TrimSpace(r.stdout) != fmt.Sprint(len(big)) {
		t.Fatalf("pulled image content: %s", r)
	}
}

// runInPTY runs vmbox with a pseudo-terminal of rows×cols as its stdio,
// types input, and returns what the terminal showed and the exit code.
func runInPTY(t *testing.T, e *env, rows, cols uint16, input string, args ...string) (string, int) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.cmd(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out syncBuffer
	done := make(chan struct{})
	go func() {
		io.Copy(&out, master) // ends with EIO when vmbox exits
		close(done)
	}()
	// Type once the shell is there: the prompt ends with "# ".
	for i := 0; i < 600 && !strings.Contains(out.String(), "# "); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	io.WriteString(master, input)
	err = cmd.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// syncBuffer is a bytes.Buffer that one goroutine writes while another reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
