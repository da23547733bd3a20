package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shareFileMiB and shareTreeFiles size BenchmarkHostFolder's work.
const (
	shareFileMiB   = 256
	shareTreeFiles = 10000
)

// BenchmarkHostFolder: a shared host folder (the default share of the
// temporary directory) next to the VM's own data disk, in the same VM and
// run: sequential write and read of a 256 MiB file (write with fsync,
// read with the VM's caches dropped) and a metadata walk (ls -lR, a
// stat of every entry, like git status) of a 10,000-file tree.
func BenchmarkHostFolder(b *testing.B) {
	e := benchEnv(b)
	const name = "share"
	e.must("start", "--name", name, "--memory", "2GiB", "--disk", "4GiB")
	shared, err := os.MkdirTemp("", "vmbox-share-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shared) })
	const disk = "/var/lib/vmbox/share-bench"

	// Each measured command's time less that of an empty one: what the
	// CLI and the channel add to every command is not the share's.
	shell := func(script string) time.Duration {
		return timed(e, "shell", "--name", name, "--", "sh", "-c", script)
	}
	var empty []time.Duration
	for range 3 {
		empty = append(empty, shell("true"))
	}
	overhead := median(empty)
	measure := func(script string) time.Duration {
		return max(shell(script)-overhead, time.Millisecond)
	}

	// The tree, the same on both sides: written on the host for the
	// share, unpacked in the VM for the disk.
	var treeTar bytes.Buffer
	tw := tar.NewWriter(&treeTar)
	for i := range shareTreeFiles {
		p := fmt.Sprintf("tree/d%03d/f%04d.go", i/100, i)
		content := []byte(fmt.Sprintf("package p // %d\n", i))
		tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write(content)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(shared, p)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shared, p), content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	tw.Close()
	e.must("shell", "--name", name, "--", "mkdir", "-p", disk)
	e.mustStdin(treeTar.String(), "shell", "--name", name, "--", "tar", "-x", "-C", disk)

	type result struct{ write, read, walk time.Duration }
	run := func(dir string) result {
		var r result
		r.write = measure(fmt.Sprintf("dd if=/dev/zero of=%s/big bs=1M count=%d conv=fsync 2>/dev/null", dir, shareFileMiB))
		r.read = measure(fmt.Sprintf("echo 3 > /proc/sys/vm/drop_caches; cat %s/big > /dev/null", dir))
		// Dropping the caches is outside the walk's time.
		e.must("shell", "--name", name, "--", "sh", "-c", "echo 3 > /proc/sys/vm/drop_caches")
		r.walk = measure(fmt.Sprintf("ls -lR %s/tree > /dev/null", dir))
		e.must("shell", "--name", name, "--", "rm", "-f", dir+"/big")
		return r
	}
	onDisk := run(disk)
	onShare := run(shared)
	mbs := func(d time.Duration) float64 { return shareFileMiB * 1.048576 / d.Seconds() }
	report := func(prefix string, r result) {
		b.ReportMetric(mbs(r.write), prefix+"-write-MB/s")
		b.ReportMetric(onDisk.write.Seconds()/r.write.Seconds(), prefix+"-write-x-disk")
		b.ReportMetric(mbs(r.read), prefix+"-read-MB/s")
		b.ReportMetric(onDisk.read.Seconds()/r.read.Seconds(), prefix+"-read-x-disk")
		b.ReportMetric(ms(r.walk), prefix+"-walk-ms")
		b.ReportMetric(onDisk.walk.Seconds()/r.walk.Seconds(), prefix+"-walk-x-disk")
	}
	b.ReportMetric(mbs(onDisk.write), "disk-write-MB/s")
	b.ReportMetric(mbs(onDisk.read), "disk-read-MB/s")
	b.ReportMetric(ms(onDisk.walk), "disk-walk-ms")
	// The default share is the target's subject; when it uses virtiofs,
	// the same folder over the agent's channel alone (what QEMU as
	// another user, on macOS or on Windows gets) is measured too.
	report("share", onShare)
	if st := e.must("status", "--name", name); strings.Contains(st.stdout, ", virtiofs)") {
		e.must("restart", "--name", name, "--mount-type", "sftp")
		overhead = median([]time.Duration{shell("true"), shell("true"), shell("true")})
		report("sftp", run(shared))
	}
}
