package qemu

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchGuest is the real image when it is built, else the echo guest.
func benchGuest(b *testing.B, cpus int) testGuest {
	if haveImage(b, "amd64") {
		return realImage(b, cpus)
	}
	return echoGuest(b, "amd64")
}

// BenchmarkBootToReady measures QEMU's launch until the agent's banner
// arrives, reported as the median ("ms-median") besides Go's mean.
// Run with -benchtime=5x or more: one iteration is a whole boot.
func BenchmarkBootToReady(b *testing.B) {
	for _, cpus := range []int{1, 2} {
		b.Run("cpus="+strconv.Itoa(cpus), func(b *testing.B) {
			g := benchGuest(b, cpus)
			b.Log(g.desc)
			d := New(Options{})
			dir := b.TempDir()
			spec := testSpec(b, g, dir)
			spec.CPUs = cpus
			spec.MemoryMiB = 2048
			var times []time.Duration
			var uptimes []float64
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
				v, err := d.Start(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				vm := v.(*VM)
				c, err := vm.DialAgent(ctx)
				cancel()
				if err != nil {
					vm.Kill()
					vm.Wait()
					b.Fatalf("DialAgent: %v\n%s", err, tail(vm.console))
				}
				times = append(times, time.Since(start))
				b.StopTimer()
				if !g.real {
					// The guest's own uptime separates boot work from the
					// host's share (QEMU start-up, scheduling under load).
					s := &session{t: b, conn: c, r: bufio.NewReader(c)}
					s.line()
					f := strings.Fields(s.do("uptime"))
					if up, err := strconv.ParseFloat(f[0], 64); err == nil {
						uptimes = append(uptimes, up*1000)
					}
				}
				c.Close()
				vm.Kill()
				vm.Wait()
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(times[0].Microseconds())/1000, "ms-min")
			b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "ms-max")
			if len(uptimes) > 0 {
				slices.Sort(uptimes)
				b.ReportMetric(uptimes[len(uptimes)/2], "guest-uptime-ms-median")
			}
		})
	}
}

// BenchmarkDataDiskFsync compares the data disk's cache modes on the
// operation they differ in: a 4 KiB write followed by fdatasync, as a
// journal commit does. Reported per fsync.
func BenchmarkDataDiskFsync(b *testing.B) {
	for _, mode := range []string{"writeback", "unsafe", "none"} {
		b.Run(mode, func(b *testing.B) {
			g := echoGuest(b, "amd64")
			dir := b.TempDir()
			disk := filepath.Join(dir, "data.raw")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.Truncate(disk, 256<<20); err != nil {
				b.Fatal(err)
			}
			spec := testSpec(b, g, dir)
			spec.CPUs = 1
			spec.DataDisk = disk
			vm := startVM(b, New(Options{diskCache: mode}), spec)
			s := dial(b, vm)
			s.line()
			const n = 200
			b.ResetTimer()
			var us int64
			for b.Loop() {
				v, err := strconv.ParseInt(s.do("fsync-bench "+strconv.Itoa(n)), 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				us += v
			}
			b.ReportMetric(float64(us)/float64(b.N*n), "µs/fsync")
		})
	}
}
