package containertest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OCIBundle writes an OCI bundle whose root is rootfs (mounted read-only:
// it is an image layer) and whose process runs args, from `runc spec`'s
// defaults. It skips the benchmark when runc is not installed.
func OCIBundle(tb testing.TB, rootfs string, args ...string) string {
	tb.Helper()
	NeedTool(tb, "runc")
	dir := tb.TempDir()
	out, err := exec.Command("runc", "spec", "--bundle", dir).CombinedOutput()
	if err != nil {
		tb.Fatalf("runc spec: %v: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		tb.Fatal(err)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	cfg["root"] = map[string]any{"path": rootfs, "readonly": true}
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// NeedTool skips the test unless tool is on PATH.
func NeedTool(tb testing.TB, tool string) {
	tb.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		tb.Skipf("%s is not installed", tool)
	}
}

// OCIRunner runs `<runtime> run` from a thread with a private mount
// namespace in which /sys/fs/cgroup/unified is unmounted: crun refuses
// cgroup v1 hybrid hosts otherwise. The children inherit the thread's
// namespace; the rest of the process keeps the host's.
type OCIRunner struct {
	reqs chan ociReq
}

type ociReq struct {
	tool, bundle string
	reply        chan OCIResult
}

// OCIResult is one run's wall time and CPU time (user+sys of the runtime
// and everything it waited for).
type OCIResult struct {
	Wall, CPU time.Duration
	Err       error
}

// NewOCIRunner starts the runner's thread; it ends with the test.
func NewOCIRunner(tb testing.TB) *OCIRunner {
	tb.Helper()
	o := &OCIRunner{reqs: make(chan ociReq)}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's mount namespace is private
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			ready <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ready <- err
			return
		}
		if err := unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			ready <- err
			return
		}
		ready <- nil
		for req := range o.reqs {
			req.reply <- runOCI(req.tool, req.bundle)
		}
	}()
	if err := <-ready; err != nil {
		tb.Fatalf("private mount namespace: %v", err)
	}
	tb.Cleanup(func() { close(o.reqs) })
	return o
}

var ociSeq int

func runOCI(tool, bundle string) OCIResult {
	ociSeq++
	id := fmt.Sprintf("vmbox-bench-%d-%d", os.Getpid(), ociSeq)
	cmd := exec.Command(tool, "run", "--bundle", bundle, id)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return OCIResult{Err: fmt.Errorf("%s run: %v: %s", tool, err, out)}
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return OCIResult{Wall: wall, CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
}

// Run runs `tool run` on bundle once and fails the benchmark on error.
func (o *OCIRunner) Run(tb testing.TB, tool, bundle string) OCIResult {
	tb.Helper()
	reply := make(chan OCIResult)
	o.reqs <- ociReq{tool, bundle, reply}
	res := <-reply
	if res.Err != nil {
		tb.Fatal(res.Err)
	}
	return res
}

// Median returns the median of d.
func Median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// ProcessCPU returns this process's CPU time so far (user+sys).
func ProcessCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ChildrenCPU returns the CPU time of this process's reaped children.
func ChildrenCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CompareWithOCI runs ours, `crun run` and `runc run` of `true` on an OCI
// bundle of layer alternately, b.N rounds of one each, and reports each
// one's median wall and CPU time and vmbox's ratios, so that one run on a
// noisy machine compares like with like. ours returns the CPU time it
// cost; settle waits for ours' background work outside the wall-clock
// timings, so that it does not slow the others' turns down, and returns
// the CPU time of that work that ours should be charged.
func CompareWithOCI(b *testing.B, layer string, ours func() (cpu time.Duration), settle func() (cpu time.Duration)) {
	bundle := OCIBundle(b, layer, "true")
	o := NewOCIRunner(b)
	ours()
	o.Run(b, "crun", bundle)
	o.Run(b, "runc", bundle)
	var wall, cpu, crun, crunCPU, runc, runcCPU []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		c := ours()
		wall = append(wall, time.Since(start))
		c += settle()
		cpu = append(cpu, c)
		res := o.Run(b, "crun", bundle)
		crun, crunCPU = append(crun, res.Wall), append(crunCPU, res.CPU)
		res = o.Run(b, "runc", bundle)
		runc, runcCPU = append(runc, res.Wall), append(runcCPU, res.CPU)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mo, mc, mr := Median(wall), Median(crun), Median(runc)
	b.ReportMetric(ms(mo), "vmbox-ms")
	b.ReportMetric(ms(mc), "crun-ms")
	b.ReportMetric(ms(mr), "runc-ms")
	b.ReportMetric(ms(mo)/ms(mc), "vmbox/crun")
	b.ReportMetric(ms(mo)/ms(mr), "vmbox/runc")
	b.ReportMetric(ms(Median(cpu)), "vmbox-cpu-ms")
	b.ReportMetric(ms(Median(crunCPU)), "crun-cpu-ms")
	b.ReportMetric(ms(Median(runcCPU)), "runc-cpu-ms")
}

// ReportCPUPerOp reports cpu, the CPU time of b.N operations, per
// operation.
func ReportCPUPerOp(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
