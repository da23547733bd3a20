package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/vmimage"
)

// TestLinuxTarballInstallsAndBoots is the "installs into a temporary
// prefix, works with no network and no checkout" check: it builds this
// host's tarball from the real CLI and guest image, copies it out of the
// repository, unpacks it with tar(1), installs it with its install.sh into
// a temporary prefix, and boots a VM with the installed binary alone
// (VMBOX_IMAGE_DIR unset, so the image must be found in
// <prefix>/share/vmbox/<arch>). It also reinstalls (idempotence),
// uninstalls, and installs with QEMU off PATH to see the hint.
func TestLinuxTarballInstallsAndBoots(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the Linux tarball installs on Linux only")
	}
	requireTools(t, "the test unpacks the archive with tar(1)", "tar")
	tg := target{"linux", runtime.GOARCH}
	imgDir := builtImage(t, tg.Arch)
	root := repoRoot(t)
	cfg := testConfig(t)
	lock, err := vmimage.ReadLock(cfg.LockPath)
	if err != nil {
		t.Fatal(err)
	}
	// CheckAgent is what `make dist` enforces; a developer tree may hold an
	// image built from another agent binary, which is no concern here.
	img, err := loadImage(imgDir, tg.Arch, lock, "")
	if err != nil {
		t.Fatal(err)
	}
	cli := cliFor(t, tg)
	art, err := buildTarball(cfg, tg, cli, img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, sha256 %s", art.Name, art.Size, art.SHA256)

	// Out of the repository: nothing may lead the binary back to a checkout.
	work, err := os.MkdirTemp("", "vmbox-dist-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if rel, err := filepath.Rel(root, work); err == nil && !strings.HasPrefix(rel, "..") {
		t.Fatalf("temporary directory %s is inside the repository %s", work, root)
	}
	tarball := filepath.Join(work, art.Name)
	copyFile(t, filepath.Join(cfg.OutDir, art.Name), tarball)
	unpacked := filepath.Join(work, "unpacked")
	if err := os.Mkdir(unpacked, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, out)
	}
	top := filepath.Join(unpacked, strings.TrimSuffix(art.Name, ".tar.gz"))
	install := filepath.Join(top, "install.sh")

	prefix := filepath.Join(work, "prefix")
	res := runCmd(t, nil, install, "--prefix", prefix)
	if res.code != 0 || !strings.Contains(res.stdout, "Installed vmbox "+cfg.Version+" into "+prefix) {
		t.Fatalf("install.sh --prefix: %s", res)
	}
	installed := map[string]string{
		filepath.Join(prefix, "bin", "vmbox"): cli,
	}
	for _, f := range imageFiles {
		installed[filepath.Join(prefix, "share", "vmbox", tg.Arch, f)] = img.path(f)
	}
	checkInstalled := func() {
		t.Helper()
		for dst, src := range installed {
			if sha256File(t, dst) != sha256File(t, src) {
				t.Errorf("%s differs from %s", dst, src)
			}
		}
		if st, err := os.Stat(filepath.Join(prefix, "bin", "vmbox")); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("installed vmbox: %v, mode %v", err, st.Mode())
		}
	}
	checkInstalled()
	// Idempotent: a second run succeeds and leaves the same files.
	if res := runCmd(t, nil, install, "--prefix", prefix); res.code != 0 {
		t.Fatalf("second install.sh --prefix: %s", res)
	}
	checkInstalled()
	leftovers, _ := filepath.Glob(filepath.Join(prefix, "*", "*.install-*"))
	if len(leftovers) > 0 {
		t.Errorf("install left temporary files: %v", leftovers)
	}

	// The installed binary alone, with no image directory in its
	// environment and the checkout's bin/ and build/ out of reach.
	vmbox := filepath.Join(prefix, "bin", "vmbox")
	home, err := os.MkdirTemp("", "vmbox-dist-home-") // short: Unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	// A docker CLI store of its own: the start adds a context there.
	env := []string{"VMBOX_HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, "docker-config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VMBOX_") && !strings.HasPrefix(kv, "DOCKER_CONFIG=") {
			env = append(env, kv)
		}
	}
	res = runCmd(t, env, vmbox, "version")
	if !strings.Contains(res.stdout, "Client:\n Version:      ") || !strings.Contains(res.stdout, "OS/Arch:      "+tg.String()) {
		t.Fatalf("installed vmbox version: %s", res)
	}

	t.Run("boots", func(t *testing.T) {
		if _, err := exec.LookPath(qemuBinary(tg.Arch)); err != nil {
			t.Skipf("%s is not installed (make deps installs it)", qemuBinary(tg.Arch))
		}
		t.Cleanup(func() {
			// Never leave a VM behind, whatever happened.
			runCmd(t, env, vmbox, "delete", "--name", "disttest", "--timeout", "5s")
			os.RemoveAll(home)
		})
		res := runCmd(t, env, vmbox, "start", "--name", "disttest")
		if res.code != 0 {
			t.Fatalf("installed vmbox start: %s\nhost process log:\n%s", res, tail(filepath.Join(home, "disttest", "hostproc.log")))
		}
		res = runCmd(t, env, vmbox, "version", "--name", "disttest")
		_, server, ok := strings.Cut(res.stdout, "\nServer: vmbox (disttest)\n")
		if res.code != 0 || !ok {
			t.Fatalf("installed vmbox version --name disttest: %s", res)
		}
		if !strings.Contains(server, "  OS/Arch:     "+tg.String()+"\n") {
			t.Errorf("Server section lacks OS/Arch:     %s:\n%s", tg, server)
		}
		if !strings.Contains(server, "  Kernel:      "+img.Manifest.KernelVersion) {
			t.Errorf("the VM does not run the packaged kernel %s:\n%s", img.Manifest.KernelVersion, server)
		}
		if res := runCmd(t, env, vmbox, "delete", "--name", "disttest"); res.code != 0 {
			t.Errorf("installed vmbox delete: %s", res)
		}
	})

	t.Run("qemu hint", func(t *testing.T) {
		// PATH holds only the tools install.sh uses, not QEMU.
		bin := t.TempDir()
		for _, tool := range []string{"cat", "uname", "dirname", "cp", "chmod", "mv", "rm", "mkdir", "rmdir"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Fatalf("%s: %v", tool, err)
			}
			if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
				t.Fatal(err)
			}
		}
		sh, err := exec.LookPath("sh")
		if err != nil {
			t.Fatal(err)
		}
		prefix2 := filepath.Join(t.TempDir(), "prefix")
		res := runCmd(t, []string{"PATH=" + bin, "HOME=" + home}, sh, install, "--prefix", prefix2)
		if res.code != 0 {
			t.Fatalf("install.sh without QEMU on PATH: %s", res)
		}
		if !strings.Contains(res.stderr, "WARNING: "+qemuBinary(tg.Arch)+" is not installed") {
			t.Errorf("no QEMU warning: %s", res)
		}
		osRelease, _ := os.ReadFile("/etc/os-release")
		want := "Install it with: "
		switch ids := strings.Join(osIDs(string(osRelease)), " "); {
		case strings.Contains(ids, "debian") || strings.Contains(ids, "ubuntu"):
			want += "sudo apt-get install " + map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[tg.Arch]
		case strings.Contains(ids, "fedora"):
			want += "sudo dnf install "
		}
		if !strings.Contains(res.stderr, want) {
			t.Errorf("QEMU hint lacks %q: %s", want, res)
		}
		if !strings.Contains(res.stdout, "is not on your PATH") {
			t.Errorf("no PATH note: %s", res)
		}
	})

	// Uninstall removes exactly what was installed.
	keep := filepath.Join(prefix, "share", "vmbox", "README.local")
	if err := os.WriteFile(keep, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runCmd(t, nil, install, "--uninstall", "--prefix", prefix); res.code != 0 {
		t.Fatalf("install.sh --uninstall: %s", res)
	}
	for dst := range installed {
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("%s still there after uninstall: %v", dst, err)
		}
	}
	if _, err := os.Stat(filepath.Join(prefix, "share", "vmbox", tg.Arch)); !os.IsNotExist(err) {
		t.Errorf("the emptied image directory is still there: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("uninstall removed a file it did not install: %v", err)
	}
}

// osIDs returns ID and ID_LIKE's words from os-release text.
func osIDs(osRelease string) []string {
	var ids []string
	for _, l := range strings.Split(osRelease, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && (k == "ID" || k == "ID_LIKE") {
			ids = append(ids, strings.Fields(strings.Trim(v, `"'`))...)
		}
	}
	return ids
}

type cmdResult struct {
	code           int
	stdout, stderr string
}

func (r cmdResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// runCmd runs a program with env (nil: this process's environment) and a
// generous deadline, for booting a VM under TCG is not quick.
func runCmd(t *testing.T, env []string, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %q: %v", name, args, err)
	}
	return cmdResult{code: code, stdout: out.String(), stderr: errb.String()}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
