//go:build linux

package boot

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMountAllIdempotent(t *testing.T) {
	root := t.TempDir()
	specs := []mountSpec{
		{"tmpfs", "/run", "tmpfs", nosuidNodev, "mode=0755"},
		{"tmpfs", "/run/sub", "tmpfs", nosuidNodev, "mode=0700"},
		{"mqueue", "/dev/mqueue", "mqueue", nosuidNodevNoexec, ""},
	}
	inMountNS(t, func() {
		mounted, err := mountAll(root, specs)
		if err != nil {
			t.Error(err)
			return
		}
		if len(mounted) != 3 {
			t.Errorf("first pass mounted %v", mounted)
		}
		assertMounted(t, filepath.Join(root, "run/sub"), "tmpfs")
		assertMounted(t, filepath.Join(root, "dev/mqueue"), "mqueue")
		st, err := os.Stat(filepath.Join(root, "run/sub"))
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("mount options not applied: %v %v", st.Mode(), err)
		}
		mounted, err = mountAll(root, specs)
		if err != nil || len(mounted) != 0 {
			t.Errorf("second pass mounted %v, %v", mounted, err)
		}
		// A mount that went away is mounted again, the rest left alone.
		if err := unix.Unmount(filepath.Join(root, "run/sub"), 0); err != nil {
			t.Error(err)
		}
		mounted, err = mountAll(root, specs)
		if err != nil || len(mounted) != 1 || mounted[0] != filepath.Join(root, "run/sub") {
			t.Errorf("third pass mounted %v, %v", mounted, err)
		}
		infos, err := readMountInfo()
		if err != nil {
			t.Error(err)
		}
		n := 0
		for _, m := range infos {
			if m.MountPoint == filepath.Join(root, "run") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d mounts stacked on run", n)
		}
	})
}

func TestEnableCgroupControllers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids rdma misc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := enableCgroupControllers(dir); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "cgroup.subtree_control"), "+cpu +cpuset +io +memory +pids")

	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "cgroup.controllers"), []byte("memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := enableCgroupControllers(partial); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(partial, "cgroup.subtree_control"), "+memory +pids")

	if err := enableCgroupControllers(t.TempDir()); err == nil {
		t.Error("no cgroup.controllers: no error")
	}
}

// TestEnableCgroupControllersReal enables controllers in a real cgroup2
// hierarchy mounted in a private mount namespace.
func TestEnableCgroupControllersReal(t *testing.T) {
	mnt := t.TempDir()
	inMountNS(t, func() {
		if err := unix.Mount("cgroup2", mnt, "cgroup2", nosuidNodevNoexec, ""); err != nil {
			t.Logf("cannot mount cgroup2 here (%v); the fake-directory test covers the logic", err)
			return
		}
		dir := filepath.Join(mnt, "vmboxtest-"+filepath.Base(t.TempDir()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Error(err)
			return
		}
		defer os.Remove(dir)
		avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			t.Error(err)
			return
		}
		if err := enableCgroupControllers(dir); err != nil {
			t.Error(err)
			return
		}
		got, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			t.Error(err)
		}
		enabled := map[string]bool{}
		for _, c := range strings.Fields(string(got)) {
			enabled[c] = true
		}
		for _, c := range strings.Fields(string(avail)) {
			if slices.Contains(cgroupControllers, c) && !enabled[c] {
				t.Errorf("controller %s available but not enabled (enabled: %q)", c, got)
			}
		}
	})
}
