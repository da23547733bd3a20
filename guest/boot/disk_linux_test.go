//go:build linux

package boot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// inMountNS runs f on an OS thread with a private mount namespace, so
// mounts made there never reach the host. The thread is never unlocked and
// dies with the goroutine. f must report failures with t.Error.
func inMountNS(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces need root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			t.Errorf("unshare mount namespace: %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("make mounts private: %v", err)
			return
		}
		f()
	}()
	<-done
}

// loopDevice attaches image to a loop device for the test's duration.
func loopDevice(t *testing.T, image string) string {
	t.Helper()
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup is not installed")
	}
	out, err := exec.Command("losetup", "--find", "--show", image).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device available: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// fakeBlock makes a /sys/block with the given disks (name -> serial) and
// a /dev whose entries link to real device paths (name -> target).
func fakeBlock(t *testing.T, serials map[string]string, devs map[string]string) (sysBlock, devDir string) {
	t.Helper()
	root := t.TempDir()
	sysBlock, devDir = filepath.Join(root, "sys/block"), filepath.Join(root, "dev")
	for name, serial := range serials {
		if err := os.MkdirAll(filepath.Join(sysBlock, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sysBlock, name, "serial"), []byte(serial+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(sysBlock, "loop0"), 0o755); err != nil { // not a virtio disk
		t.Fatal(err)
	}
	if err := os.MkdirAll(devDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range devs {
		if err := os.Symlink(target, filepath.Join(devDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return sysBlock, devDir
}

func TestFindDataDisk(t *testing.T) {
	sysBlock, _ := fakeBlock(t, map[string]string{"vdb": "second", "vda": "first", "vdaa": "late", "vdc": ""}, nil)
	ctx := context.Background()
	tests := []struct {
		serial   string
		required bool
		want     string
		errHas   string
	}{
		{"", false, "vda", ""},
		{"second", true, "vdb", ""},
		{"late", true, "vdaa", ""},
		{"missing", false, "", ""},
		{"missing", true, "", `no virtio disk with serial "missing"`},
	}
	for _, tt := range tests {
		got, err := findDataDisk(ctx, sysBlock, tt.serial, tt.required, 30*time.Millisecond)
		if got != tt.want || (tt.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
			t.Errorf("findDataDisk(serial %q, required %v) = %q, %v; want %q, %q", tt.serial, tt.required, got, err, tt.want, tt.errHas)
		}
	}
	empty := t.TempDir()
	if _, err := findDataDisk(ctx, empty, "", true, 0); err == nil || !strings.Contains(err.Error(), "no virtio disk (vd*)") {
		t.Errorf("required disk on a machine without one: %v", err)
	}
	if got, err := findDataDisk(ctx, filepath.Join(empty, "absent"), "", false, 0); got != "" || err != nil {
		t.Errorf("no /sys/block at all: %q, %v", got, err)
	}
}

func TestFormatDataDiskRefusesData(t *testing.T) {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Skip("mke2fs (e2fsprogs) is not installed")
	}
	p := mkImage(t, 8<<20, func(f *os.File) { writeAt(t, f, 4096, []byte("precious")) })
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := formatDataDisk(context.Background(), mke2fs, p, false); err == nil || !strings.Contains(err.Error(), "not blank") {
		t.Fatalf("format of a disk with data: %v", err)
	}
	after, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("the disk changed")
	}
	blank := mkImage(t, 8<<20, nil)
	if err := formatDataDisk(context.Background(), mke2fs, blank, false); err != nil {
		t.Fatal(err)
	}
	if p := probeFile(t, blank); !p.isVmboxData() || p.Type != "ext4" {
		t.Fatalf("formatted disk probes as %+v", p)
	}
	if err := formatDataDisk(context.Background(), mke2fs, blank, false); err == nil {
		t.Fatal("second format of the same disk: no error")
	}
}

// TestPrepareDataDisk formats a blank loop device, mounts it, and on the
// next "boot" mounts it again without formatting, data intact; a disk with
// a foreign file system is refused and left as it was.
func TestPrepareDataDisk(t *testing.T) {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Skip("mke2fs (e2fsprogs) is not installed")
	}
	img := mkImage(t, 64<<20, nil)
	loop := loopDevice(t, img)
	sysBlock, devDir := fakeBlock(t, map[string]string{"vda": "vmbox-data"}, map[string]string{"vda": loop})
	mnt := filepath.Join(t.TempDir(), "var/lib/vmbox")
	env := diskEnv{sysBlock: sysBlock, devDir: devDir, mountPoint: mnt, mke2fs: mke2fs, waitDisk: time.Second}
	cfg := vmconfig.DataDisk{Required: true, Serial: "vmbox-data"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	inMountNS(t, func() {
		d, err := prepareDataDisk(ctx, cfg, env, &Timings{})
		if err != nil {
			t.Error(err)
			return
		}
		if !d.Formatted || d.Device != filepath.Join(devDir, "vda") || d.MountPoint != mnt {
			t.Errorf("first boot: %+v", d)
		}
		assertMounted(t, mnt, "ext4")
		if err := os.WriteFile(filepath.Join(mnt, "state"), []byte("kept"), 0o644); err != nil {
			t.Error(err)
		}
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Error(err)
			return
		}

		d, err = prepareDataDisk(ctx, cfg, env, &Timings{})
		if err != nil {
			t.Error(err)
			return
		}
		if d.Formatted {
			t.Error("second boot formatted the disk again")
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "state")); err != nil || string(b) != "kept" {
			t.Errorf("data after second boot: %q, %v", b, err)
		}
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Error(err)
		}
	})
	if p := probeFile(t, img); !p.isVmboxData() {
		t.Errorf("image probes as %+v", p)
	}

	// A foreign file system: refused, untouched.
	foreign := mkImage(t, 16<<20, nil)
	runTool(t, "mke2fs", "-q", "-t", "ext4", "-L", "photos", "-F", foreign)
	before, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}
	sysBlock2, devDir2 := fakeBlock(t, map[string]string{"vda": ""}, map[string]string{"vda": foreign})
	env2 := diskEnv{sysBlock: sysBlock2, devDir: devDir2, mountPoint: filepath.Join(t.TempDir(), "m"), mke2fs: mke2fs}
	_, err = prepareDataDisk(ctx, vmconfig.DataDisk{}, env2, &Timings{})
	if err == nil || !strings.Contains(err.Error(), `labelled "photos"`) {
		t.Errorf("foreign ext4: error %v", err)
	}
	swap := mkImage(t, 16<<20, nil)
	runTool(t, "mkswap", swap)
	sysBlock3, devDir3 := fakeBlock(t, map[string]string{"vda": ""}, map[string]string{"vda": swap})
	env3 := diskEnv{sysBlock: sysBlock3, devDir: devDir3, mountPoint: filepath.Join(t.TempDir(), "m"), mke2fs: mke2fs}
	if _, err = prepareDataDisk(ctx, vmconfig.DataDisk{}, env3, &Timings{}); err == nil || !strings.Contains(err.Error(), "holds swap data") {
		t.Errorf("swap disk: error %v", err)
	}
	after, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("the foreign disk changed")
	}
}

func TestPrepareDataDiskNoDiskTmpfs(t *testing.T) {
	sysBlock, devDir := fakeBlock(t, nil, nil)
	mnt := filepath.Join(t.TempDir(), "data")
	env := diskEnv{sysBlock: sysBlock, devDir: devDir, mountPoint: mnt, mke2fs: "/nonexistent"}
	inMountNS(t, func() {
		d, err := prepareDataDisk(context.Background(), vmconfig.DataDisk{}, env, &Timings{})
		if err != nil {
			t.Error(err)
			return
		}
		if d.Device != "" || d.Formatted || d.MountPoint != mnt {
			t.Errorf("no disk: %+v", d)
		}
		assertMounted(t, mnt, "tmpfs")
		if _, err := prepareDataDisk(context.Background(), vmconfig.DataDisk{Required: true}, env, &Timings{}); err == nil {
			t.Error("required but missing disk: no error")
		}
	})
}

func assertMounted(t *testing.T, target, fstype string) {
	t.Helper()
	infos, err := readMountInfo()
	if err != nil {
		t.Error(err)
		return
	}
	m, ok := isMounted(infos, target)
	if !ok || m.FSType != fstype {
		t.Errorf("%s: mounted %v as %q, want %s", target, ok, m.FSType, fstype)
	}
}

// TestPrepareDataDiskFresh: a first format that was cut short leaves data
// no probe recognises; only a disk the host calls fresh is formatted again.
func TestPrepareDataDiskFresh(t *testing.T) {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Skip("mke2fs (e2fsprogs) is not installed")
	}
	junk := func(f *os.File) { f.WriteAt([]byte("half-written block bitmap"), 8192) }
	swap := mkImage(t, 16<<20, nil)
	runTool(t, "mkswap", swap)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cases := []struct {
		name      string
		image     string
		fresh     bool
		wantErr   string
		formatted bool
	}{
		{"interrupted format, disk in use", mkImage(t, 64<<20, junk), false, "holds unknown data", false},
		{"interrupted format, fresh disk", mkImage(t, 64<<20, junk), true, "", true},
		{"foreign file system, fresh disk", swap, true, "holds swap data", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(tc.image)
			loop := loopDevice(t, tc.image)
			sysBlock, devDir := fakeBlock(t, map[string]string{"vda": "vmbox-data"}, map[string]string{"vda": loop})
			mnt := filepath.Join(t.TempDir(), "m")
			env := diskEnv{sysBlock: sysBlock, devDir: devDir, mountPoint: mnt, mke2fs: mke2fs, waitDisk: time.Second}
			inMountNS(t, func() {
				d, err := prepareDataDisk(ctx, vmconfig.DataDisk{Required: true, Serial: "vmbox-data", Fresh: tc.fresh}, env, &Timings{})
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("error %v, want %q", err, tc.wantErr)
					}
					return
				}
				if err != nil || !d.Formatted {
					t.Errorf("got %+v, %v; want formatted", d, err)
					return
				}
				assertMounted(t, mnt, "ext4")
				unix.Unmount(mnt, 0)
			})
			if after, _ := os.ReadFile(tc.image); !tc.formatted && string(after) != string(before) {
				t.Error("a refused disk was changed")
			}
		})
	}
}

// TestFormatLeavesNoLazyInit: a fresh disk (the host's new sparse file)
// is formatted with every inode table marked zeroed, so the kernel has no
// background zeroing to do on an idle VM; a disk that may hold old data
// leaves the zeroing to the kernel.
func TestFormatLeavesNoLazyInit(t *testing.T) {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Skip("mke2fs (e2fsprogs) is not installed")
	}
	dumpe2fs, err := exec.LookPath("dumpe2fs")
	if err != nil {
		t.Skip("dumpe2fs (e2fsprogs) is not installed")
	}
	for _, tt := range []struct {
		fresh      bool
		wantZeroed bool
	}{{true, true}, {false, false}} {
		disk := mkImage(t, 512<<20, nil) // four block groups
		if err := formatDataDisk(context.Background(), mke2fs, disk, tt.fresh); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(dumpe2fs, disk).CombinedOutput()
		if err != nil {
			t.Fatalf("dumpe2fs: %v: %s", err, out)
		}
		groups, zeroed := 0, 0
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "Group ") && strings.Contains(line, "(Blocks") {
				groups++
				if strings.Contains(line, "ITABLE_ZEROED") {
					zeroed++
				}
			}
		}
		if groups < 2 {
			t.Fatalf("fresh=%v: dumpe2fs shows %d groups:\n%s", tt.fresh, groups, out)
		}
		if all := zeroed == groups; all != tt.wantZeroed {
			t.Errorf("fresh=%v: %d of %d groups have zeroed inode tables; want all: %v", tt.fresh, zeroed, groups, tt.wantZeroed)
		}
	}
}
