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
	containertest.ReportCPUPerOp(b, cpu)
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
	ours := func() time.Duration {
		cpu0 := containertest.ProcessCPU() + containertest.ChildrenCPU()
		runRmTrue(b, e)
		return containertest.ProcessCPU() + containertest.ChildrenCPU() - cpu0
	}
	settle := func() time.Duration {
		cpu0 := containertest.ProcessCPU() + containertest.ChildrenCPU()
		e.Idle()
		return containertest.ProcessCPU() + containertest.ChildrenCPU() - cpu0
	}
	containertest.CompareWithOCI(b, img.Layers[0], ours, settle)
}
