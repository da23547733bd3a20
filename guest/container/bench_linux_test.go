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
	id := containertest.RandHex(32)
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
	containertest.ReportCPUPerOp(b, cpu)
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
	containertest.ReportCPUPerOp(b, cpu)
}

// BenchmarkCompare alternates vmbox, crun and runc runs of `true` (b.N
// rounds of one each) and reports each one's median wall and CPU time and
// vmbox's ratios (containertest.CompareWithOCI).
func BenchmarkCompare(b *testing.B) {
	containertest.NeedTool(b, "crun")
	r := newRuntime(b, container.Options{})
	layer := containertest.BusyboxLayer(b)
	dir := b.TempDir()
	containertest.CompareWithOCI(b, layer, func() time.Duration { return runTrue(b, r, layer, dir) }, settled(r))
}

// BenchmarkCompareCold is BenchmarkCompare without the warm helper, to
// show what the warm helper buys.
func BenchmarkCompareCold(b *testing.B) {
	containertest.NeedTool(b, "crun")
	r := newRuntime(b, container.Options{Cold: true})
	layer := containertest.BusyboxLayer(b)
	dir := b.TempDir()
	containertest.CompareWithOCI(b, layer, func() time.Duration { return runTrue(b, r, layer, dir) }, settled(r))
}

// settled returns the settle function of CompareWithOCI for r: it waits for
// the next warm helper, whose CPU time is charged when a container's init
// is reaped (runTrue), not here.
func settled(r *container.Runtime) func() time.Duration {
	return func() time.Duration {
		r.Settle()
		return 0
	}
}
