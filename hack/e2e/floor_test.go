package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/driver/qemu"
	"github.com/vmbox/vmbox/internal/cpio"
)

// The floor of the VM benchmarks: the same kernel, booted by the same
// driver with the same devices and command line, but with a trivial static
// init instead of vmbox's agent. What vmbox costs beyond it is vmbox's.

const floorReady = "vmbox-floor-ready"

// floorInitC says it is up on the console, then sleeps for ever: the least
// an init can do. Built with ONLINE_CPUS it first brings online the vCPUs
// that the kernel command line's maxcpus=1 left offline, as vmbox's agent
// does once it is ready, so that an idle floor runs on as many vCPUs as an
// idle instance.
const floorInitC = `#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
#ifdef ONLINE_CPUS
	mkdir("/sys", 0755);
	mount("sysfs", "/sys", "sysfs", 0, 0);
	for (int cpu = 1;; cpu++) {
		char path[64];
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/online", cpu);
		int on = open(path, O_WRONLY);
		if (on < 0) break;
		write(on, "1", 1);
		close(on);
	}
#endif
	int fd = open("/dev/console", O_WRONLY);
	write(fd, "` + floorReady + `\n", sizeof "` + floorReady + `");
	for (;;) pause();
}
`

// floorInitrd builds the floor's initramfs: /init only, which brings every
// vCPU online first when allCPUs is set.
func floorInitrd(tb testing.TB, allCPUs bool) string {
	tb.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		tb.Skip("gcc is not installed (make deps installs it): the floor's init is C")
	}
	dir := tb.TempDir()
	src := filepath.Join(dir, "init.c")
	os.WriteFile(src, []byte(floorInitC), 0o644)
	bin := filepath.Join(dir, "init")
	args := []string{"-static", "-Os", "-s", "-o", bin, src}
	if allCPUs {
		args = append(args, "-DONLINE_CPUS")
	}
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		tb.Fatalf("build the floor init: %v: %s", err, out)
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	if err := w.File("init", 0o755, code); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	initrd := filepath.Join(dir, "floor.cpio")
	if err := os.WriteFile(initrd, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return initrd
}

// floorVM boots the floor with the resources the vmbox benchmarks give
// their instances and returns it once its init has spoken, with the time
// that took from asking the driver; with allCPUs its init brings every vCPU
// online before it speaks.
func floorVM(tb testing.TB, image string, cpus, memoryMiB int, allCPUs bool) (driver.VM, time.Duration) {
	tb.Helper()
	initrd := floorInitrd(tb, allCPUs)
	dir, err := os.MkdirTemp("", "vmbox-floor")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	disk := filepath.Join(dir, "data.raw")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	os.Truncate(disk, 4<<30)
	console := filepath.Join(dir, "console.log")
	spec := driver.Spec{
		Name: "floor", Dir: dir, Arch: runtime.GOARCH, CPUs: cpus, MemoryMiB: memoryMiB,
		Kernel: filepath.Join(image, "kernel"), Initrds: []string{initrd}, DataDisk: disk, Console: console,
	}
	d := qemu.New(qemu.Options{Arch: runtime.GOARCH})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := d.Start(ctx, spec)
	if err != nil {
		tb.Fatalf("start the floor VM: %v", err)
	}
	tb.Cleanup(func() { vm.Kill(); vm.Wait() })
	for {
		if b, _ := os.ReadFile(console); bytes.Contains(b, []byte(floorReady)) {
			return vm, time.Since(start)
		}
		if ctx.Err() != nil {
			tb.Fatalf("the floor VM never said it was up; console: %s", lastLines(readFile(console), 10))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// cpuTime is the CPU time all threads of pid have run (schedstat, ns).
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		tb.Fatalf("no threads of pid %d: %v", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just ended
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(n)
		}
	}
	return total
}

// idleShare is the share of one host CPU pid uses over d.
func idleShare(tb testing.TB, pid int, d time.Duration) float64 {
	before := cpuTime(tb, pid)
	time.Sleep(d)
	return float64(cpuTime(tb, pid)-before) / float64(d)
}
