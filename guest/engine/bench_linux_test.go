package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/engine"
)

func runtimeOptions(parent string) container.Options {
	return container.Options{CgroupParent: parent}
}

func runRmTrue(b *testing.B, e *engine.Engine) {
	res, err := e.Run(context.Background(), api.RunArgs{Config: api.ContainerConfig{Image: "busybox", AutoRemove: true, Cmd: []string{"true"}}}, engine.Streams{}, nil)
	if err != nil || res.ExitCode != 0 {
		b.Fatalf("%+v %v", res, err)
	}
}

// BenchmarkRunRmTrue measures the agent's `run --rm busybox true` through
// the engine (create, attach, start, wait, remove), back to back.
func BenchmarkRunRmTrue(b *testing.B) {
	e := newEngine(b, b.TempDir())
	runRmTrue(b, e)
	cpu0 := containertest.ProcessCPU() + containertest.ChildrenCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runRmTrue(b, e)
	}
	b.StopTimer()
	e.Idle()
	cpu := containertest.ProcessCPU() + containertest.ChildrenCPU() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// BenchmarkCompare alternates the engine's `run --rm busybox true` with
// `crun run` and `runc run` of `true` on an OCI bundle of the same image
// layer, and reports the medians and ratios. The engine's background work
// (removing the container's directory, warming the next helper) is
// finished outside the timings before the others' turns; its CPU time is
// counted.
func BenchmarkCompare(b *testing.B) {
	containertest.NeedTool(b, "crun")
	e := newEngine(b, b.TempDir())
	img, err := images(b).Get("busybox")
	if err != nil {
		b.Fatal(err)
	}
	bundle := containertest.OCIBundle(b, img.Layers[0], "true")
	o := containertest.NewOCIRunner(b)
	runRmTrue(b, e)
	o.Run(b, "crun", bundle)
	o.Run(b, "runc", bundle)
	var wall, cpu, crun, crunCPU, runc, runcCPU []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu0 := containertest.ProcessCPU() + containertest.ChildrenCPU()
		start := time.Now()
		runRmTrue(b, e)
		wall = append(wall, time.Since(start))
		e.Idle()
		cpu = append(cpu, containertest.ProcessCPU()+containertest.ChildrenCPU()-cpu0)
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
