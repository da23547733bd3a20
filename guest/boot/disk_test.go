package boot

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// mkImage makes a sparse image file of size bytes and lets fill write to it.
func mkImage(t *testing.T, size int64, fill func(f *os.File)) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		fill(f)
	}
	return p
}

func writeAt(t *testing.T, f *os.File, off int64, b []byte) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (e2fsprogs/util-linux): %v", name, err)
	}
	if out, err := exec.Command(p, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

func probeFile(t *testing.T, p string) diskProbe {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := probeDisk(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func TestProbeDisk(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		size     int64
		make     func(t *testing.T, p string)
		fill     func(t *testing.T, f *os.File)
		want     diskProbe
		isVmbox  bool
		needTool string
	}{
		{name: "all zero", size: 64 * mib, want: diskProbe{Blank: true}},
		{name: "all zero, tiny", size: 4096, want: diskProbe{Blank: true}},
		{name: "ext4 with our label", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", append(mke2fsArgs(false), p)...)
		}, want: diskProbe{Type: "ext4", Label: vmconfig.DataLabel}, isVmbox: true},
		{name: "ext4 with another label", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", "-q", "-t", "ext4", "-L", "home", "-F", p)
		}, want: diskProbe{Type: "ext4", Label: "home"}},
		{name: "ext4 without a label", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", "-q", "-t", "ext4", "-F", p)
		}, want: diskProbe{Type: "ext4"}},
		{name: "ext2 with our label", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", "-q", "-t", "ext2", "-L", vmconfig.DataLabel, "-F", p)
		}, want: diskProbe{Type: "ext2", Label: vmconfig.DataLabel}, isVmbox: true},
		{name: "ext3", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", "-q", "-t", "ext3", "-F", p)
		}, want: diskProbe{Type: "ext3"}},
		{name: "swap", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mkswap", p)
		}, want: diskProbe{Type: "swap"}},
		{name: "xfs signature", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 0, []byte("XFSB\x00\x00\x10\x00"))
		}, want: diskProbe{Type: "xfs"}},
		{name: "btrfs signature", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 0x10040, []byte("_BHRfS_M"))
		}, want: diskProbe{Type: "btrfs"}},
		{name: "gpt", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 0x1fe, []byte{0x55, 0xaa})
			writeAt(t, f, 0x200, []byte("EFI PART"))
		}, want: diskProbe{Type: "gpt"}},
		{name: "mbr", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 0x1be, []byte{0x80, 0, 0, 0, 0x83})
			writeAt(t, f, 0x1fe, []byte{0x55, 0xaa})
		}, want: diskProbe{Type: "dos"}},
		{name: "ext4 over xfs remains", size: 16 * mib, make: func(t *testing.T, p string) {
			runTool(t, "mke2fs", append(mke2fsArgs(false), p)...)
		}, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 0, []byte("XFSB"))
		}, want: diskProbe{Type: "ext4+xfs", Label: vmconfig.DataLabel}},
		{name: "unknown data at the start", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 5000, []byte("some user data"))
		}, want: diskProbe{Type: "unknown"}},
		{name: "data only at the end", size: 16 * mib, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 16*mib-512, []byte("md 0.90 superblock or GPT backup"))
		}, want: diskProbe{Type: "unknown"}},
		{name: "data in the last byte of a small disk", size: 1536 * 1024, fill: func(t *testing.T, f *os.File) {
			writeAt(t, f, 1536*1024-1, []byte{1})
		}, want: diskProbe{Type: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mkImage(t, tt.size, nil)
			if tt.make != nil {
				tt.make(t, p)
			}
			if tt.fill != nil {
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				tt.fill(t, f)
				f.Close()
			}
			got := probeFile(t, p)
			if got != tt.want {
				t.Fatalf("ProbeDisk = %+v, want %+v", got, tt.want)
			}
			if got.isVmboxData() != tt.isVmbox {
				t.Fatalf("IsVmboxData = %v", got.isVmboxData())
			}
		})
	}
	if _, err := probeDisk(bytes.NewReader(nil), 0); err == nil {
		t.Error("empty disk: no error")
	}
}
