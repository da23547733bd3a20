package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// allocatedBytes is how much of path's file is backed by disk blocks.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// loopExt4 mounts a fresh ext4 on a sparse file through a loop device
// (which passes discards on as holes in the file, as QEMU's discard=unmap
// does for the data disk) and returns the mount point and the file.
func loopExt4(t *testing.T) (mnt, image string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	image = filepath.Join(dir, "disk.raw")
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20)
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", image).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt = filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := syscall.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s: %v", dev, err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	return mnt, image
}

func TestTrimReturnsFreedBlocks(t *testing.T) {
	mnt, image := loopExt4(t)
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	big := filepath.Join(mnt, "big")
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Trim(mnt); err != nil {
		t.Fatal(err)
	}
	full := allocatedBytes(t, image)
	os.Remove(big)

	tr := NewTrimmer(mnt, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tr.Run(ctx)
	tr.Poke()
	tr.Poke() // a burst is one trim
	deadline := time.Now().Add(trimDelay + 10*time.Second)
	for {
		now := allocatedBytes(t, image)
		if full-now >= 60<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("disk image holds %d MiB after deleting 64 MiB and a trim, was %d MiB", now>>20, full>>20)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestTrimOfNoFileSystem(t *testing.T) {
	if _, err := Trim(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("trim of a missing path: no error")
	}
}
