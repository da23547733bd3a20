package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVMArm64 boots the arm64 guest image under qemu-system-aarch64 (TCG on
// this amd64 machine) through the same CLI path as amd64 guests.
func TestVMArm64(t *testing.T) {
	img := filepath.Join(repoRoot(), "build", "image", "arm64")
	if _, err := os.Stat(filepath.Join(img, "kernel")); err != nil {
		t.Skip("no arm64 guest image: run `make image-arm64` first (make test builds it)")
	}
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 is not installed (make deps installs qemu-system-arm)")
	}
	e := newEnvNoVM(t)
	e.image = img
	const name = "arm"
	e.must("start", "--name", name, "--arch", "arm64", "--cpus", "1", "--memory", "1GiB", "--disk", "2GiB")
	v := e.must("version", "--name", name).stdout
	for _, want := range []string{"Server: vmbox (" + name + ")", "OS/Arch:     linux/arm64", "Kernel:      6.1.0-"} {
		if !strings.Contains(v, want) {
			t.Errorf("version output lacks %q:\n%s", want, v)
		}
	}
	if out := e.must("shell", "--name", name, "--", "uname", "-m").stdout; out != "aarch64\n" {
		t.Errorf("uname -m = %q", out)
	}
	if s := e.status(name); s.Arch != "arm64" || s.State != "running" {
		t.Errorf("status: %+v", s)
	}
	e.must("delete", "--name", name)
}
