package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Markers printed by testdata/testinit.
const (
	markerDone  = "VMBOX-TESTINIT-DONE"
	markerCheck = "VMBOX-CHECK-OK"
	markerFail  = "VMBOX-CHECK-FAIL"
)

// hostTSCkHz reads the host's TSC frequency. Under TCG the guest's TSC is
// the host's, and microvm has no PIT calibration to fall back on, so the
// guest must be told (tsc_early_khz=, lpj=) or it hangs at boot.
func hostTSCkHz() (int64, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0, err
	}
	return parseCPUInfoMHz(b)
}

func parseCPUInfoMHz(cpuinfo []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || mhz <= 0 {
			return 0, fmt.Errorf("cpuinfo: bad cpu MHz %q", v)
		}
		return int64(mhz*1000 + 0.5), nil
	}
	return 0, fmt.Errorf("cpuinfo has no cpu MHz line")
}

func TestParseCPUInfoMHz(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"processor\t: 0\ncpu MHz\t\t: 2096.023\nflags\t: fpu\n", 2096023, false},
		{"cpu MHz : 3000\ncpu MHz : 1200\n", 3000000, false},
		{"processor : 0\n", 0, true},
		{"cpu MHz : fast\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseCPUInfoMHz([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseCPUInfoMHz(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// bareBootArgs is the fastest x86 TCG configuration measured: microvm, PVH direct boot of the vmlinux
// ELF, one vCPU, tuned command line, no devices besides the serial console.
func bareBootArgs(tb testing.TB, dir string, man *Manifest, extra ...string) []string {
	tb.Helper()
	khz, err := hostTSCkHz()
	if err != nil {
		tb.Fatalf("host TSC frequency: %v", err)
	}
	lpj := khz * 1000 / int64(man.KernelHZ)
	cmdline := []string{
		"console=ttyS0", "quiet", "panic=-1", "tsc=reliable", fmt.Sprintf("lpj=%d", lpj),
		"no_timer_check", "cryptomgr.notests", "rcupdate.rcu_expedited=1", "mitigations=off",
		"rodata=off", "8250.nr_uarts=1", fmt.Sprintf("tsc_early_khz=%d", khz),
	}
	return []string{
		"-machine", "microvm,pit=on,pic=on,rtc=on", "-accel", "tcg",
		"-cpu", "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+rdrand", "-m", "2048", "-smp", "1",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nodefaults",
		"-kernel", filepath.Join(dir, KernelFile), "-initrd", filepath.Join(dir, InitrdFile),
		"-append", strings.Join(append(cmdline, extra...), " "),
	}
}

func requireQEMU(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		tb.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	return bin
}

// bootResult is one boot's measurements.
type bootResult struct {
	toMarker time.Duration // wall time from launch to the marker line
	cpu      time.Duration // QEMU's user+system CPU time for the whole run
}

// bootToMarker runs QEMU until it exits and returns the time from launch
// until the console printed marker, and the console output.
func bootToMarker(ctx context.Context, qemu string, args []string, marker string) (time.Duration, string, error) {
	r, console, err := boot(ctx, qemu, args, marker)
	return r.toMarker, console, err
}

// boot runs QEMU until it exits and measures it. CPU time is reported
// because wall time on a shared machine mostly measures the other load.
func boot(ctx context.Context, qemu string, args []string, marker string) (bootResult, string, error) {
	cmd := exec.CommandContext(ctx, qemu, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return bootResult{}, "", err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return bootResult{}, "", err
	}
	var console strings.Builder
	var toMarker time.Duration
	br := bufio.NewReader(out)
	for {
		line, err := br.ReadString('\n')
		console.WriteString(line)
		if toMarker == 0 && strings.Contains(line, marker) {
			toMarker = time.Since(start)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return bootResult{}, console.String(), err
		}
	}
	if err := cmd.Wait(); err != nil {
		return bootResult{}, console.String(), fmt.Errorf("qemu: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if toMarker == 0 {
		return bootResult{}, console.String(), fmt.Errorf("guest never printed %s", marker)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return bootResult{toMarker: toMarker, cpu: cpu}, console.String(), nil
}

// TestBootCheck boots the image with testinit in check mode: it proves the
// PVH kernel boots under QEMU, /dev/console works, every module in
// modules.txt loads in file order, busybox runs, the shipped mkfs.ext4
// (with its libraries and loader) makes ext4, and the CA bundle parses.
func TestBootCheck(t *testing.T) {
	qemu := requireQEMU(t)
	dir, man := testImage(t, "amd64")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, console, err := bootToMarker(ctx, qemu, bareBootArgs(t, dir, man, "vmboxcheck=1"), markerDone)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	if strings.Contains(console, markerFail) || !strings.Contains(console, markerCheck) {
		t.Fatalf("guest checks failed; console:\n%s", console)
	}
	want := fmt.Sprintf("modules=%d ", len(man.Modules.Shipped))
	if !strings.Contains(console, want) {
		t.Errorf("guest loaded a different number of modules than shipped (%s); console:\n%s", want, console)
	}
	t.Logf("checked boot done %v after launch", d.Round(time.Millisecond))
}

// TestBareBoot boots the image with the trivial /init: the floor under
// every vmbox boot (QEMU start, kernel, initramfs unpack, a static Go
// program printing a line).
func TestBareBoot(t *testing.T) {
	qemu := requireQEMU(t)
	dir, man := testImage(t, "amd64")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, console, err := bootToMarker(ctx, qemu, bareBootArgs(t, dir, man), markerDone)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	t.Logf("bare boot: marker %v after launch", d.Round(time.Millisecond))
}

// BenchmarkBareBoot measures launch of qemu-system-x86_64 (TCG) to the
// trivial /init's console marker. ms-to-marker is the number to report;
// ns/op also includes QEMU's exit after the guest reboots, and
// qemu-cpu-ms is the CPU time QEMU used, which varies far less than wall
// time when other work competes for the host's cores.
func BenchmarkBareBoot(b *testing.B) {
	qemu := requireQEMU(b)
	dir, man := testImage(b, "amd64")
	args := bareBootArgs(b, dir, man)
	var wall, cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		r, console, err := boot(ctx, qemu, args, markerDone)
		cancel()
		if err != nil {
			b.Fatalf("%v\nconsole:\n%s", err, console)
		}
		wall += r.toMarker
		cpu += r.cpu
	}
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "ms-to-marker")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "qemu-cpu-ms")
}

// TestBootCheckArm64 is TestBootCheck for the arm64 image, under
// qemu-system-aarch64 TCG with the configuration the notes measured
// (virt machine, cortex-a72: -cpu max emulates pointer authentication
// slowly).
func TestBootCheckArm64(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skip("qemu-system-aarch64 not installed (apt-get install qemu-system-arm)")
	}
	dir, man := testImage(t, "arm64")
	if man.KernelFormat != "arm64-image" {
		t.Fatalf("kernel format %q", man.KernelFormat)
	}
	args := []string{
		"-machine", "virt", "-cpu", "cortex-a72", "-accel", "tcg", "-m", "2048", "-smp", "1",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nodefaults",
		"-kernel", filepath.Join(dir, KernelFile), "-initrd", filepath.Join(dir, InitrdFile),
		"-append", "console=ttyAMA0 quiet panic=-1 cryptomgr.notests rcupdate.rcu_expedited=1 mitigations=off rodata=off vmboxcheck=1",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d, console, err := bootToMarker(ctx, qemu, args, markerDone)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	if strings.Contains(console, markerFail) || !strings.Contains(console, markerCheck) {
		t.Fatalf("guest checks failed; console:\n%s", console)
	}
	t.Logf("arm64 checked boot done %v after launch", d.Round(time.Millisecond))
}
