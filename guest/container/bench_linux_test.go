package container_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
)

// runTrue creates, starts, waits for and removes one container running
// `true`, and returns the CPU time it cost: this process's own plus its
// reaped children's (the container's init, which includes the warm
// helper's Go start-up).
func runTrue(b *testing.B, r *container.Runtime, layer, dir string) time.Duration {
	cpu0 := containertest.ProcessCPU() + containertest.ChildrenCPU()
	id := randID()
	c, err := r.Start(context.Background(), &container.Spec{
		ID: id, Dir: filepath.Join(dir, id), Layers: []string{layer},
		Args: []string{"true"}, Hostname: id[:12],
	})
	if err != nil {
		b.Fatal(err)
	}
	exit, err := c.Wait()
	if err != nil || exit.Code != 0 {
		b.Fatalf("exit %+v, %v", exit, err)
	}
	c.Stdout.Close()
	c.Stderr.Close()
	if err := os.RemoveAll(filepath.Join(dir, id)); err != nil {
		b.Fatal(err)
	}
	return containertest.ProcessCPU() + containertest.ChildrenCPU() - cpu0
}

// BenchmarkRunTrue measures create+start+exit+remove of `true` in the
// busybox root file system through the runtime (warm helper).
func BenchmarkRunTrue(b *testing.B) {
	benchRunTrue(b, container.Options{})
}

// BenchmarkRunTrueCold is the same without the warm helper: every start
// pays the re-exec's Go start-up on the critical path.
func BenchmarkRunTrueCold(b *testing.B) {
	benchRunTrue(b, container.Options{Cold: true})
}

func benchRunTrue(b *testing.B, opts container.Options) {
	r := newRuntime(b, opts)
	layer := containertest.BusyboxLayer(b)
	dir := b.TempDir()
	runTrue(b, r, layer, dir) // warm up
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu += runTrue(b, r, layer, dir)
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkCrunRunTrue runs `crun run` on an OCI bundle of the same rootfs.
func BenchmarkCrunRunTrue(b *testing.B) { benchOCI(b, "crun") }

// BenchmarkRuncRunTrue runs `runc run` on an OCI bundle of the same rootfs.
func BenchmarkRuncRunTrue(b *testing.B) { benchOCI(b, "runc") }

func benchOCI(b *testing.B, tool string) {
	containertest.NeedTool(b, tool)
	bundle := containertest.OCIBundle(b, containertest.BusyboxLayer(b), "true")
	o := containertest.NewOCIRunner(b)
	o.Run(b, tool, bundle)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu += o.Run(b, tool, bundle).CPU
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkCompare alternates vmbox, crun and runc runs of `true` (b.N
// rounds of one each) and reports each one's median wall and CPU time and
// vmbox's ratios, so that one run on a noisy machine compares like with
// like.
func BenchmarkCompare(b *testing.B) {
	containertest.NeedTool(b, "crun")
	r := newRuntime(b, container.Options{})
	layer := containertest.BusyboxLayer(b)
	dir := b.TempDir()
	compare(b, layer, func() time.Duration { return runTrue(b, r, layer, dir) }, r.Settle)
}

// compare runs ours and crun and runc alternately and reports medians.
// settle waits for our background work (the next warm helper), outside the
// timings, so that it does not slow the others' turns down.
func compare(b *testing.B, layer string, ours func() (cpu time.Duration), settle func()) {
	bundle := containertest.OCIBundle(b, layer, "true")
	o := containertest.NewOCIRunner(b)
	ours()
	o.Run(b, "crun", bundle)
	o.Run(b, "runc", bundle)
	var wall, cpu, crun, crunCPU, runc, runcCPU []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		c := ours()
		wall, cpu = append(wall, time.Since(start)), append(cpu, c)
		settle()
		res := o.Run(b, "crun", bundle)
		crun, crunCPU = append(crun, res.Wall), append(crunCPU, res.CPU)
		res = o.Run(b, "runc", bundle)
		runc, runcCPU = append(runc, res.Wall), append(runcCPU, res.CPU)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mo, mc, mr := containertest.Median(wall), containertest.Median(crun), containertest.Median(runc)
	b.ReportMetric(ms(mo), "vmbox-ms")
	b.ReportMetric(ms(mc), "crun-ms")
	b.ReportMetric(ms(mr), "runc-ms")
	b.ReportMetric(ms(mo)/ms(mc), "vmbox/crun")
	b.ReportMetric(ms(mo)/ms(mr), "vmbox/runc")
	b.ReportMetric(ms(containertest.Median(cpu)), "vmbox-cpu-ms")
	b.ReportMetric(ms(containertest.Median(crunCPU)), "crun-cpu-ms")
	b.ReportMetric(ms(containertest.Median(runcCPU)), "runc-cpu-ms")
}

// BenchmarkCompareCold is BenchmarkCompare without the warm helper, to
// show what the warm helper buys.
func BenchmarkCompareCold(b *testing.B) {
	containertest.NeedTool(b, "crun")
	r := newRuntime(b, container.Options{Cold: true})
	layer := containertest.BusyboxLayer(b)
	dir := b.TempDir()
	compare(b, layer, func() time.Duration { return runTrue(b, r, layer, dir) }, r.Settle)
}
