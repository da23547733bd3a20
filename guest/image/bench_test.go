package image_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// BenchmarkPullUnpack pulls and unpacks the busybox image from a local
// registry into a fresh store per iteration. Compare with
// BenchmarkSkopeoUmoci, which does the same job with skopeo and umoci.
func BenchmarkPullUnpack(b *testing.B) {
	addr := imagetest.StartRegistry(b)
	imagetest.Push(b, imagetest.BusyboxImage(b), addr+"/busybox:latest")
	ref := addr + "/busybox:latest"
	dir := b.TempDir()
	ctx := context.Background()
	i := 0
	cpu := cpuTime(syscall.RUSAGE_SELF)
	for b.Loop() {
		i++
		s, err := image.Open(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Pull(ctx, ref, image.PullOptions{}, nil); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	reportCPU(b, cpuTime(syscall.RUSAGE_SELF)-cpu)
}

// BenchmarkSkopeoUmoci is the reference for BenchmarkPullUnpack: skopeo copy
// from the same local registry into an OCI layout, then umoci raw unpack.
func BenchmarkSkopeoUmoci(b *testing.B) {
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed", tool)
		}
	}
	addr := imagetest.StartRegistry(b)
	imagetest.Push(b, imagetest.BusyboxImage(b), addr+"/busybox:latest")
	dir := b.TempDir()
	i := 0
	cpu := cpuTime(syscall.RUSAGE_CHILDREN)
	for b.Loop() {
		i++
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		run(b, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+addr+"/busybox:latest", "oci:"+filepath.Join(d, "oci")+":latest")
		run(b, "umoci", "raw", "unpack", "--image", filepath.Join(d, "oci")+":latest", filepath.Join(d, "rootfs"))
	}
	reportCPU(b, cpuTime(syscall.RUSAGE_CHILDREN)-cpu)
}

// cpuTime is the user+system time of this process or of its waited-for
// children. Wall time on a shared machine is noisy; CPU time is steadier.
// The registry is a child that has not exited, so it is in neither.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}
