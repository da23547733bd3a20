package qemu

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/driver"
)

func TestFindVirtiofsd(t *testing.T) {
	has := func(paths ...string) func(string) bool {
		return func(p string) bool { return slices.Contains(paths, p) }
	}
	tests := []struct {
		name    string
		goos    string
		euid    int
		env     string
		exists  func(string) bool
		want    string
		wantErr string
	}{
		{"debian", "linux", 0, "", has("/usr/lib/qemu/virtiofsd"), "/usr/lib/qemu/virtiofsd", ""},
		{"rust first", "linux", 0, "", has("/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"), "/usr/libexec/virtiofsd", ""},
		{"env", "linux", 0, "/opt/virtiofsd", has("/opt/virtiofsd"), "/opt/virtiofsd", ""},
		{"env missing", "linux", 0, "/opt/virtiofsd", has("/usr/lib/qemu/virtiofsd"), "", "VMBOX_VIRTIOFSD=/opt/virtiofsd: no such file"},
		{"not root", "linux", 1000, "", has("/usr/lib/qemu/virtiofsd"), "", "needs root"},
		{"none", "linux", 0, "", has(), "", "no virtiofsd"},
		{"macos", "darwin", 0, "", has("/usr/libexec/virtiofsd"), "", "only on Linux"},
		{"windows", "windows", -1, "", has(), "", "only on Linux"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findVirtiofsd(tc.goos, tc.euid, tc.env, tc.exists)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestArgsFolders(t *testing.T) {
	for _, tc := range []struct {
		arch, device, machine string
		legacyOff             bool
	}{
		{"amd64", "vhost-user-fs-device", "microvm,pit=off,pic=on,rtc=on,memory-backend=vmmem", true},
		{"arm64", "vhost-user-fs-pci", "virt,memory-backend=vmmem", false},
	} {
		c := Config{
			Name: "x", Arch: tc.arch, Accel: "tcg", CPUs: 1, MemoryMiB: 512, Kernel: "k", QMPSocket: "q", Pidfile: "p",
			Folders: []FolderDevice{{Tag: "vmbox0", Socket: "virtiofs-0.sock"}, {Tag: "vmbox1", Socket: "a,b.sock"}},
		}
		got := strings.Join(Args(c), " ")
		for _, want := range []string{
			"-machine " + tc.machine + " ",
			"-object memory-backend-memfd,id=vmmem,size=512M,share=on",
			"-chardev socket,id=folder0,path=virtiofs-0.sock -device " + tc.device + ",chardev=folder0,tag=vmbox0",
			"-chardev socket,id=folder1,path=a,,b.sock -device " + tc.device + ",chardev=folder1,tag=vmbox1",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("%s argv lacks %q:\n%s", tc.arch, want, got)
			}
		}
		if strings.Contains(got, "force-legacy=false") != tc.legacyOff {
			t.Errorf("%s: virtio-mmio force-legacy=false is %v, want %v", tc.arch, !tc.legacyOff, tc.legacyOff)
		}
		c.Folders = nil
		if got := strings.Join(Args(c), " "); strings.Contains(got, "memory-backend") || strings.Contains(got, "vhost-user") || strings.Contains(got, "force-legacy") {
			t.Errorf("%s argv without folders has virtiofs parts:\n%s", tc.arch, got)
		}
	}
}

// TestStartFolders runs the host's virtiofsd for a folder: it listens on
// the socket QEMU is told to connect to, and dies when told.
func TestStartFolders(t *testing.T) {
	bin, err := hostVirtiofsd()
	if err != nil {
		t.Skipf("no virtiofsd to run: %v", err)
	}
	dir := t.TempDir()
	comma := filepath.Join(t.TempDir(), "a,xattr")
	os.Mkdir(comma, 0o755)
	devs, stop := startFolders(context.Background(), bin, dir, []driver.Folder{
		{Tag: "vmbox0", HostPath: t.TempDir()},
		{Tag: "vmbox1", HostPath: filepath.Join(dir, "missing")},
		{Tag: "vmbox2", HostPath: t.TempDir(), ReadOnly: true},
		{Tag: "vmbox3", HostPath: comma},
	})
	defer stop()
	if len(devs) != 1 || devs[0].Tag != "vmbox0" {
		t.Fatalf("devices %v; want vmbox0 alone (vmbox1's folder does not exist, vmbox2 is read-only, vmbox3's path has a comma)", devs)
	}
	if _, err := os.Stat(filepath.Join(dir, devs[0].Socket)); err != nil {
		t.Fatalf("virtiofsd's socket: %v", err)
	}
	// A second instance's folders start too, while the first's run:
	// virtiofsd's host-wide pid files are named after the sockets.
	dir2 := t.TempDir()
	devs2, stop2 := startFolders(context.Background(), bin, dir2, []driver.Folder{{Tag: "vmbox0", HostPath: t.TempDir()}})
	if len(devs2) != 1 {
		stop2()
		t.Fatalf("a second instance's folder did not start: %v", devs2)
	}
	// Its pid file goes with it.
	pid := filepath.Join(virtiofsdPidDir, folderSocket(dir2, 0)+".pid")
	_, err = os.Stat(pid)
	hadPid := err == nil
	stop2()
	for range 100 {
		if _, err := os.Stat(pid); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hadPid {
		t.Errorf("%s is left after virtiofsd ended", pid)
	}
}
