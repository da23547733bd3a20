package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/driver/qemu"
)

// BenchmarkPublishedPort: bulk bytes through a published port each way
// (host → host process → agent's gateway → container, and back), next to
// the floor: plain TCP between host and guest over the same QEMU user
// networking (a port forwarded through QMP to busybox nc in the VM), in
// the same VM and run. Also the set-up latency of a connection through a
// published port (median of 200, connect and one echoed byte) and the
// time `run -d` takes with 100 published ports.
func BenchmarkPublishedPort(b *testing.B) {
	e, ref := busyboxInstance(b, "pub")
	const name = "pub"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	port := freeLoopbackPort(b)
	qmp := qemu.QMPSocket(filepath.Join(e.home, name))
	if _, err := qemu.QMP(ctx, qmp, "human-monitor-command", map[string]string{
		"command-line": fmt.Sprintf("hostfwd_add tcp:127.0.0.1:%d-:5555", port),
	}); err != nil {
		b.Fatalf("hostfwd_add: %v", err)
	}
	// Under TCG one transfer's time swings with the host's load by up to
	// 2x, so each is taken transferRounds times, the published port's and
	// the floor's alternating, and the medians compared.
	sink, source := "nc -l -p 5555 | wc -c", fmt.Sprintf("head -c %d /dev/zero | nc -l -p 5555", channelBytes)
	var up, down, floorUp, floorDown []time.Duration
	for range transferRounds {
		up = append(up, containerTransfer(ctx, b, e, ref, sink, true))
		floorUp = append(floorUp, ncTransfer(ctx, b, e, name, port, sink, true))
		down = append(down, containerTransfer(ctx, b, e, ref, source, false))
		floorDown = append(floorDown, ncTransfer(ctx, b, e, name, port, source, false))
	}

	reportTransfers(b, up, down, floorUp, floorDown)

	// Connection set-up: connect, send a byte, read its echo.
	echoPort := freeLoopbackPort(b)
	e.must("run", "-d", "--name", "echo", "-p", fmt.Sprintf("%d:7", echoPort), ref, "sh", "-c", "exec nc -ll -p 7 -e cat")
	addr := fmt.Sprintf("127.0.0.1:%d", echoPort)
	echo := func() (time.Duration, error) {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			return 0, err
		}
		var one [1]byte
		if _, err := io.ReadFull(c, one[:]); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	for i := 0; ; i++ {
		if _, err := echo(); err == nil {
			break
		} else if i > 100 {
			b.Fatalf("echo through the published port: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var lat []time.Duration
	for i := 0; i < 200; i++ {
		d, err := echo()
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(ms(lat[len(lat)/2]), "connect-echo-median-ms")
	b.ReportMetric(ms(lat[len(lat)*95/100]), "connect-echo-p95-ms")

	// run -d with 100 published ports.
	first := freeRange(b, 100)
	start := time.Now()
	e.must("run", "-d", "--name", "many", "-p", fmt.Sprintf("%d-%d:8000-8099", first, first+99), ref, "sleep", "600")
	b.ReportMetric(ms(time.Since(start)), "run-100-ports-ms")
	start = time.Now()
	e.must("run", "-d", "--name", "none", ref, "sleep", "600")
	b.ReportMetric(ms(time.Since(start)), "run-0-ports-ms")
	e.run("rm", "-f", "many", "none", "echo")
}

// containerTransfer runs listener (busybox nc in a container publishing
// its port 5555, attached, as ncTransfer runs it in the VM) and times
// moving channelBytes through the published port: to the container when
// up, else from it. The container counts what it received when up.
func containerTransfer(ctx context.Context, b *testing.B, e *env, ref, listener string, up bool) time.Duration {
	b.Helper()
	port := freeLoopbackPort(b)
	ctr := e.cmd(ctx, "run", "--rm", "-p", fmt.Sprintf("%d:5555", port), ref, "sh", "-c", listener)
	// The port is bound before the container's command runs, which then
	// needs a moment to listen.
	return timedTransfer(ctx, b, ctr, fmt.Sprintf("127.0.0.1:%d", port), "container", up)
}

// transferRounds is how many times the transfer benchmarks
// (BenchmarkPublishedPort, BenchmarkChannelThroughput) time each transfer,
// alternating with the floor.
const transferRounds = 3

// reportTransfers reports the medians of transfers of channelBytes each
// way and of the floor's, and their ratios.
func reportTransfers(b *testing.B, up, down, floorUp, floorDown []time.Duration) {
	mbs := func(d time.Duration) float64 { return float64(channelBytes) / 1e6 / d.Seconds() }
	b.ReportMetric(mbs(median(up)), "up-MB/s")
	b.ReportMetric(mbs(median(down)), "down-MB/s")
	b.ReportMetric(mbs(median(floorUp)), "floor-up-MB/s")
	b.ReportMetric(mbs(median(floorDown)), "floor-down-MB/s")
	b.ReportMetric(median(floorUp).Seconds()/median(up).Seconds(), "up-x-floor")
	b.ReportMetric(median(floorDown).Seconds()/median(down).Seconds(), "down-x-floor")
}

// freeRange finds n consecutive free loopback TCP ports.
func freeRange(b *testing.B, n int) int {
	b.Helper()
	for base := 20000; base+n < 60000; base += n {
		var ls []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	b.Fatal("no free range of loopback ports")
	return 0
}
