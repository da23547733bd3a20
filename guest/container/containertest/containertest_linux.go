package containertest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BusyboxPath is where Debian's busybox-static installs the binary.
const BusyboxPath = "/bin/busybox"

// Requirements skips the test unless it can start real containers here.
func Requirements(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: containers use namespaces, mounts and cgroups")
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(b), "overlay") {
		tb.Skip("the kernel has no overlayfs")
	}
	if !isStaticBusybox(BusyboxPath) {
		tb.Skip("needs a static " + BusyboxPath + " (Debian package busybox-static)")
	}
}

func isStaticBusybox(p string) bool {
	out, err := exec.Command(p, "--list").Output()
	return err == nil && strings.Contains(string(out), "sh\n")
}

var (
	layerOnce sync.Once
	layerDir  string
	layerErr  error
)

// BusyboxLayer returns a layer directory built once per test binary in a
// fresh temporary directory. Callers must treat it as read-only, like every
// image layer. The directory is removed by CleanupLayers (call it from
// TestMain after m.Run).
func BusyboxLayer(tb testing.TB) string {
	tb.Helper()
	Requirements(tb)
	layerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmbox-busybox-layer-")
		if err != nil {
			layerErr = err
			return
		}
		layerDir = dir
		layerErr = BuildBusyboxLayer(filepath.Join(dir, "layer"))
	})
	if layerErr != nil {
		tb.Fatalf("build busybox layer: %v", layerErr)
	}
	return filepath.Join(layerDir, "layer")
}

// CleanupLayers removes the directory BusyboxLayer made, if any.
func CleanupLayers() {
	if layerDir != "" {
		os.RemoveAll(layerDir)
	}
}

// Passwd and Group are the layer's /etc files: root, nobody and an
// unprivileged "app" user (uid 1000) who is also in group "extra" (1001).
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	Group = "root:x:0:\n" +
		"app:x:1000:\n" +
		"extra:x:1001:app\n" +
		"nogroup:x:65534:\n"
)

// BuildBusyboxLayer writes a busybox root filesystem into dir (which must
// not exist): /bin/busybox, a symlink per applet, /etc/passwd, /etc/group,
// /tmp, /root and /home/app. It has no /proc, /sys or /dev: the runtime
// makes mount points that an image lacks.
func BuildBusyboxLayer(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(dir, "home/app"), 1000, 1000); err != nil {
		return err
	}
	src, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), src, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		name := strings.TrimSpace(s.Text())
		if name == "" || name == "busybox" || strings.Contains(name, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", name)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(Passwd), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "etc/group"), []byte(Group), 0o644)
}
