package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestInstallHint(t *testing.T) {
	tests := []struct {
		goos, arch, osRelease, want string
	}{
		{"linux", "amd64", "ID=debian\n", `"apt-get install qemu-system-x86"`},
		{"linux", "arm64", "ID=debian\n", `"apt-get install qemu-system-arm"`},
		{"linux", "amd64", "ID=ubuntu\nID_LIKE=debian\n", `"apt-get install qemu-system-x86"`},
		{"linux", "amd64", "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", `"apt-get install qemu-system-x86"`},
		{"linux", "amd64", "ID=fedora\n", `"dnf install qemu-system-x86-core"`},
		{"linux", "arm64", "ID=fedora\n", `"dnf install qemu-system-aarch64-core"`},
		{"linux", "amd64", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", `"dnf install qemu-system-x86-core"`},
		{"linux", "amd64", "ID=arch\n", `"pacman -S qemu-system-x86"`},
		{"linux", "amd64", "ID=opensuse-tumbleweed\nID_LIKE=\"opensuse suse\"\n", `"zypper install qemu-x86"`},
		{"linux", "amd64", "ID=alpine\n", `"apk add qemu-system-x86_64"`},
		{"linux", "amd64", "", `"apt-get install qemu-system-x86" (Debian/Ubuntu) or "dnf install qemu-system-x86-core" (Fedora)`},
		{"darwin", "arm64", "", `"brew install qemu"`},
		{"windows", "amd64", "", "qemu-w64-setup installer"},
	}
	for _, tt := range tests {
		got := installHint(tt.goos, tt.arch, tt.osRelease)
		if !strings.Contains(got, tt.want) {
			t.Errorf("installHint(%s, %s, %q) = %q, want it to contain %s", tt.goos, tt.arch, tt.osRelease, got, tt.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("installHint(%s, %s) is more than one line: %q", tt.goos, tt.arch, got)
		}
	}
}

// TestAvailableMissingBinary runs Available with nothing on PATH: the
// error is one line naming the emulator and what to install.
func TestAvailableMissingBinary(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv(EnvBinary, "")
	if runtime.GOOS != "linux" {
		t.Skip("well-known install folders outside PATH may hold QEMU on " + runtime.GOOS)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		err := New(Options{Arch: arch}).Available()
		if err == nil {
			t.Fatalf("Available(%s) with an empty PATH = nil", arch)
		}
		msg := err.Error()
		wantBin := binaryName(arch) + " not found: install it with"
		if !strings.HasPrefix(msg, wantBin) || strings.Contains(msg, "\n") {
			t.Errorf("Available(%s) = %q, want one line starting %q", arch, msg, wantBin)
		}
		if want := installHint("linux", arch, readOSRelease()); !strings.HasSuffix(msg, want) {
			t.Errorf("Available(%s) = %q, want the hint %q", arch, msg, want)
		}
		t.Log(msg)
	}
}

func TestAvailableOverride(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-qemu")
	t.Setenv(EnvBinary, missing)
	err := New(Options{}).Available()
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), EnvBinary) {
		t.Fatalf("Available with %s=%s: %v, want an error naming both", EnvBinary, missing, err)
	}
	t.Log(err)

	// Options.Binary wins over the environment.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := New(Options{Binary: self}).Available(); err != nil {
		t.Fatalf("Available with Binary=%s: %v", self, err)
	}
	err = New(Options{Binary: missing}).Available()
	if err == nil || !strings.Contains(err.Error(), "driver options") {
		t.Fatalf("Available with a missing Options.Binary: %v", err)
	}

	if err := New(Options{Arch: "riscv64", Binary: self}).Available(); err == nil {
		t.Fatal("Available accepted guest architecture riscv64")
	}
	if err := New(Options{Accel: "xen", Binary: self}).Available(); err == nil {
		t.Fatal("Available accepted accelerator xen")
	}
}

func TestAvailableFindsInstalledQEMU(t *testing.T) {
	t.Setenv(EnvBinary, "")
	for _, arch := range []string{"amd64", "arm64"} {
		if _, err := exec.LookPath(binaryName(arch)); err != nil {
			t.Logf("%s not installed", binaryName(arch))
			continue
		}
		if err := New(Options{Arch: arch}).Available(); err != nil {
			t.Errorf("Available(%s) = %v with %s on PATH", arch, err, binaryName(arch))
		}
	}
}
