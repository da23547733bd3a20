package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// These benchmarks measure what a user waits for. Each reports the median
// of its samples (ms-median) besides Go's mean, since boot times under TCG
// have long tails. Run them with hack/bench.sh (make bench).

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchEnv is newEnv for benchmarks.
func benchEnv(b *testing.B) *env {
	img := imageDir()
	if img == "" {
		b.Skip("no guest image: run `make image` first")
	}
	home, err := os.MkdirTemp("", "vmbox-bench")
	if err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, bin: builtBinary, home: home, image: img}
	b.Cleanup(func() {
		if insts, _ := os.ReadDir(home); insts != nil {
			for _, i := range insts {
				e.run("delete", "--name", i.Name(), "--timeout", "5s")
			}
		}
		os.RemoveAll(home)
	})
	return e
}

func timed(e *env, args ...string) time.Duration {
	start := time.Now()
	e.must(args...)
	return time.Since(start)
}

// BenchmarkColdStart: `vmbox start` of a stopped instance until the agent
// answers (the disk already formatted), median of 5, next to the floor: the
// same kernel and QEMU configuration booting a trivial init until it
// speaks, in the same run.
func BenchmarkColdStart(b *testing.B) {
	e := benchEnv(b)
	e.must("create", "--name", "cold", "--memory", "2GiB", "--disk", "4GiB")
	e.must("start", "--name", "cold") // first boot formats the data disk
	e.must("stop", "--name", "cold")
	var samples, floor []time.Duration
	for i := 0; i < 5; i++ {
		samples = append(samples, timed(e, "start", "--name", "cold"))
		e.must("stop", "--name", "cold")
		vm, d := floorVM(b, e.image, 2, 2048, false)
		floor = append(floor, d)
		vm.Kill()
		vm.Wait()
	}
	b.ReportMetric(ms(median(samples)), "ms-median")
	b.ReportMetric(ms(median(floor)), "floor-ms-median")
	b.ReportMetric(float64(median(samples))/float64(median(floor)), "x-floor")
}

// BenchmarkIdleCPU: the share of a host CPU the hypervisor of an idle
// instance uses over 60 s, first running (after it settled), then once its
// host process paused it for want of use (--idle-pause; 5 minutes by
// default, 100 s here to keep the benchmark short); next to the floor
// VM's: as it boots (its second vCPU stays offline: the command line's
// maxcpus=1, which vmbox's agent undoes once ready) and, second, with
// every vCPU online as in an instance.
func BenchmarkIdleCPU(b *testing.B) {
	e := benchEnv(b)
	e.must("start", "--name", "idlecpu", "--memory", "2GiB", "--disk", "4GiB", "--idle-pause", "100s")
	time.Sleep(20 * time.Second)
	_, hv := e.bootInfo("idlecpu")
	vmbox := idleShare(b, hv, time.Minute)
	for deadline := time.Now().Add(time.Minute); e.status("idlecpu").IdlePausedSince == nil; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			b.Fatal("the idle instance was not paused 100 s after its start")
		}
	}
	paused := idleShare(b, hv, time.Minute)
	e.must("stop", "--name", "idlecpu")
	floorIdle := func(allCPUs bool) float64 {
		vm, _ := floorVM(b, e.image, 2, 2048, allCPUs)
		defer func() { vm.Kill(); vm.Wait() }()
		time.Sleep(10 * time.Second)
		return idleShare(b, vm.Pid(), time.Minute)
	}
	floor, floorAllCPUs := floorIdle(false), floorIdle(true)
	b.ReportMetric(100*vmbox, "cpu-%")
	b.ReportMetric(100*floor, "floor-cpu-%")
	b.ReportMetric(vmbox/floor, "x-floor")
	b.ReportMetric(100*floorAllCPUs, "floor-all-vcpus-cpu-%")
	b.ReportMetric(vmbox/floorAllCPUs, "x-floor-all-vcpus")
	b.ReportMetric(100*paused, "idle-paused-cpu-%")
	b.ReportMetric(paused/floor, "idle-paused-x-floor")
}

// busyboxInstance starts instance name (2 GiB) with busybox pulled from a
// test registry on the host's loopback; later commands act on that
// instance, and ref is the image as the guest names it.
func busyboxInstance(b *testing.B, name string) (*env, string) {
	e := benchEnv(b)
	reg := imagetest.StartRegistry(b)
	imagetest.Push(b, imagetest.BusyboxImage(b), reg+"/busybox:latest")
	ref := "host.vmbox.internal:" + reg[strings.LastIndex(reg, ":")+1:] + "/busybox"
	e.extra = []string{"VMBOX_INSTANCE=" + name}
	e.must("start", "--memory", "2GiB", "--disk", "4GiB")
	e.must("pull", ref)
	return e, ref
}

// BenchmarkMemoryReturn: the hypervisor's RSS while idle, after a container
// allocated and freed 1 GiB, and 30 s later (free page reporting hands the
// pages back); the target is within 150 MB of idle.
func BenchmarkMemoryReturn(b *testing.B) {
	e, ref := busyboxInstance(b, "mem")
	time.Sleep(10 * time.Second)
	_, hv := e.bootInfo("mem")
	idle := rssKiB(hv)
	e.must("run", "--rm", ref, "dd", "if=/dev/zero", "of=/dev/null", "bs=1G", "count=1")
	peak := rssKiB(hv)
	returned := time.Duration(-1)
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		if rssKiB(hv)-idle <= 150*1024 {
			returned = time.Since(start)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	after := rssKiB(hv)
	b.ReportMetric(float64(idle)/1024, "idle-RSS-MiB")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
	b.ReportMetric(float64(after)/1024, "after-RSS-MiB")
	b.ReportMetric(returned.Seconds(), "s-to-within-150MB")
}

// BenchmarkVersion: `vmbox version` against a running VM, median of 20.
func BenchmarkVersion(b *testing.B) {
	e := benchEnv(b)
	e.must("start", "--name", "ver", "--memory", "2GiB", "--disk", "4GiB")
	var samples []time.Duration
	for i := 0; i < 20; i++ {
		samples = append(samples, timed(e, "version", "--name", "ver"))
	}
	b.ReportMetric(ms(median(samples)), "ms-median")
}

// BenchmarkIdleFootprint: resident memory of the hypervisor and of the host
// process with an idle 2 GiB guest, and the guest image's size.
func BenchmarkIdleFootprint(b *testing.B) {
	e := benchEnv(b)
	e.must("start", "--name", "idle", "--memory", "2GiB", "--disk", "4GiB")
	time.Sleep(10 * time.Second) // let the guest settle
	host, hv := e.bootInfo("idle")
	b.ReportMetric(float64(rssKiB(hv))/1024, "hypervisor-RSS-MiB")
	b.ReportMetric(float64(rssKiB(host))/1024, "hostproc-RSS-MiB")
	var size int64
	for _, f := range []string{"kernel", "initrd.img"} {
		if st, err := os.Stat(filepath.Join(e.image, f)); err == nil {
			size += st.Size()
		}
	}
	b.ReportMetric(float64(size)/1e6, "image-MB")
	if st, err := os.Stat(filepath.Join(e.image, "kernel.zst")); err == nil {
		ird, _ := os.Stat(filepath.Join(e.image, "initrd.img"))
		b.ReportMetric(float64(st.Size()+ird.Size())/1e6, "image-shipped-MB")
	}
}

func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// BenchmarkRunHostHop: warm `vmbox run --rm IMAGE true` from the host,
// median of 20, next to the same command run inside the guest against the
// agent's guest socket (no host hop): the difference is what the host path
// costs.
func BenchmarkRunHostHop(b *testing.B) {
	e, ref := busyboxInstance(b, "hop")

	// The same CLI binary and the instance's keys, inside the guest.
	bin, _ := os.ReadFile(builtBinary)
	e.mustStdin(string(bin), "shell", "--", "sh", "-c", "cat > /tmp/vmbox && chmod +x /tmp/vmbox")
	for _, k := range []string{"config.json", "id_ed25519", "id_ed25519.pub", "ssh_host_ed25519", "ssh_host_ed25519.pub"} {
		data, _ := os.ReadFile(filepath.Join(e.home, "hop", k))
		e.mustStdin(string(data), "shell", "--", "sh", "-c", "mkdir -p /tmp/vh/hop && cat > /tmp/vh/hop/"+k)
	}
	for i := 0; i < 3; i++ { // warm both paths
		e.must("run", "--rm", ref, "true")
	}
	var host []time.Duration
	for i := 0; i < 20; i++ {
		host = append(host, timed(e, "run", "--rm", ref, "true"))
	}
	// busybox's date has no nanoseconds: time the 20 runs together with
	// /proc/uptime (10 ms resolution over about a second) and compare means.
	script := fmt.Sprintf(`export VMBOX_HOME=/tmp/vh VMBOX_INSTANCE=hop; r() { /tmp/vmbox --host unix:///run/vmbox/agent.sock run --rm %s true; }; r; r; r; read s _ < /proc/uptime; for i in $(seq 20); do r || exit 1; done; read t _ < /proc/uptime; echo $s $t`, ref)
	out := strings.Fields(e.must("shell", "--", "sh", "-c", script).stdout)
	if len(out) != 2 {
		b.Fatalf("guest timing output %q", out)
	}
	s0, err0 := strconv.ParseFloat(out[0], 64)
	s1, err1 := strconv.ParseFloat(out[1], 64)
	if err0 != nil || err1 != nil {
		b.Fatalf("guest timing output %q", out)
	}
	guestMean := time.Duration((s1 - s0) / 20 * float64(time.Second))
	var sum time.Duration
	for _, d := range host {
		sum += d
	}
	hostMean := sum / time.Duration(len(host))
	b.ReportMetric(ms(hostMean), "host-ms-mean")
	b.ReportMetric(ms(guestMean), "guest-ms-mean")
	b.ReportMetric(ms(hostMean-guestMean), "hop-ms")
}

// BenchmarkFirstRun: `vmbox run` of an image not yet pulled on a stopped VM,
// total, with the same steps timed one by one on a fresh instance.
func BenchmarkFirstRun(b *testing.B) {
	e := benchEnv(b)
	reg := imagetest.StartRegistry(b)
	imagetest.Push(b, imagetest.BusyboxImage(b), reg+"/busybox:latest")
	ref := "host.vmbox.internal:" + reg[strings.LastIndex(reg, ":")+1:] + "/busybox"
	prepare := func(name string) {
		e.must("create", "--name", name, "--memory", "2GiB", "--disk", "4GiB")
		e.must("start", "--name", name) // format the disk once
		e.must("stop", "--name", name)
	}
	prepare("first")
	e.extra = []string{"VMBOX_INSTANCE=first"}
	total := timed(e, "run", "--rm", ref, "true")
	prepare("steps")
	e.extra = []string{"VMBOX_INSTANCE=steps"}
	boot := timed(e, "start")
	pull := timed(e, "pull", ref)
	run := timed(e, "run", "--rm", ref, "true")
	b.ReportMetric(ms(total), "total-ms")
	b.ReportMetric(ms(boot), "boot-ms")
	b.ReportMetric(ms(pull), "pull-ms")
	b.ReportMetric(ms(run), "start-ms")
}
