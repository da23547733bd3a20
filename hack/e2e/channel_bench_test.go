package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/driver/qemu"
)

// channelBytes is what each direction moves in BenchmarkChannelThroughput.
const channelBytes = 100 << 20

// BenchmarkChannelThroughput: bulk bytes between a host process and a
// command in the VM, as load, save and shell move them (a bulk
// operation's stdin and stdout: a plain stream through the forwarding
// gateway on QEMU's hostfwd), each way, next to the floor: plain TCP
// between host and guest over the same user networking, forwarded for the
// benchmark through QMP, in the same VM and run. It reports medians.
func BenchmarkChannelThroughput(b *testing.B) {
	e := benchEnv(b)
	const name = "chan"
	e.must("start", "--name", name, "--memory", "2GiB", "--disk", "4GiB")
	// The boot work held back until the start is done (the engine, the
	// second CPU) runs right after it: measure the channel, not that.
	e.must("ps", "--name", name)

	port := freeLoopbackPort(b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	qmp := qemu.QMPSocket(filepath.Join(e.home, name))
	if _, err := qemu.QMP(ctx, qmp, "human-monitor-command", map[string]string{
		"command-line": fmt.Sprintf("hostfwd_add tcp:127.0.0.1:%d-:5555", port),
	}); err != nil {
		b.Fatalf("hostfwd_add: %v", err)
	}
	// One transfer's time swings with the host's load by up to 2x (the
	// host's cores are shared by QEMU's main loop, which runs user
	// networking, and its vCPUs): rounds alternate with the floor and
	// the medians are compared.
	var up, down, floorUp, floorDown []time.Duration
	for range transferRounds {
		// vmbox: stdin into the guest, stdout out of it.
		up = append(up, timedCopy(b, func() (int64, error) {
			cmd := e.cmd(context.Background(), "shell", "--name", name, "--", "sh", "-c", "cat > /dev/null")
			cmd.Stdin = io.LimitReader(zeroReader{}, channelBytes)
			return channelBytes, cmd.Run()
		}))
		down = append(down, timedCopy(b, func() (int64, error) {
			cmd := e.cmd(context.Background(), "shell", "--name", name, "--", "head", "-c", strconv.Itoa(channelBytes), "/dev/zero")
			out, err := cmd.StdoutPipe()
			if err != nil {
				return 0, err
			}
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			n, _ := io.Copy(io.Discard, out)
			return n, cmd.Wait()
		}))
		// Floor: a forwarded port to busybox nc in the guest.
		floorUp = append(floorUp, ncTransfer(ctx, b, e, name, port, "nc -l -p 5555 | wc -c", true))
		floorDown = append(floorDown, ncTransfer(ctx, b, e, name, port, fmt.Sprintf("head -c %d /dev/zero | nc -l -p 5555", channelBytes), false))
	}
	reportTransfers(b, up, down, floorUp, floorDown)
	b.Logf("rounds (s): up %v, floor %v; down %v, floor %v", up, floorUp, down, floorDown)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// timedCopy times one transfer and fails the benchmark unless it moved
// channelBytes.
func timedCopy(b *testing.B, transfer func() (int64, error)) time.Duration {
	b.Helper()
	start := time.Now()
	n, err := transfer()
	d := time.Since(start)
	if err != nil || n != channelBytes {
		b.Fatalf("transfer moved %d bytes of %d: %v", n, channelBytes, err)
	}
	return d
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ncTransfer runs listener (busybox nc) in the guest and times moving
// channelBytes through the forwarded port: to the guest when up, else from
// it.
func ncTransfer(ctx context.Context, b *testing.B, e *env, name string, port int, listener string, up bool) time.Duration {
	b.Helper()
	guest := e.cmd(ctx, "shell", "--name", name, "--", "sh", "-c", listener)
	return timedTransfer(ctx, b, guest, fmt.Sprintf("127.0.0.1:%d", port), "guest", up)
}

// timedTransfer starts listener, a command whose nc listens behind addr and,
// when up, prints the number of bytes it received, and times moving
// channelBytes through addr: to the listener when up, else from it. A
// forwarder (slirp, a published port) may accept a connection before the
// listener listens, so the listener gets a second before the clock runs
// and a transfer that moved nothing is tried again. The clock stops when
// the last byte has arrived: at the count (up) or at EOF (down).
func timedTransfer(ctx context.Context, b *testing.B, listener *exec.Cmd, addr, what string, up bool) time.Duration {
	b.Helper()
	var received syncBuffer
	listener.Stdout = &received
	if err := listener.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- listener.Wait() }()
	time.Sleep(time.Second)
	for attempt := 0; attempt < 300; attempt++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		start := time.Now()
		var n int64
		if up {
			n, err = io.Copy(c, io.LimitReader(zeroReader{}, channelBytes))
			c.Close()
			if err == nil && n == channelBytes {
				// The clock stops when the count arrives, not when the
				// listener's command has exited: a container's teardown
				// is no part of moving bytes.
				d, err := countArrives(start, &received, done)
				if err != nil {
					b.Fatalf("%s listener: %v", what, err)
				}
				// The listener counts what it received: a transfer only
				// counts if all of it arrived.
				if got := strings.TrimSpace(received.String()); got != strconv.Itoa(channelBytes) {
					b.Fatalf("the %s received %s bytes of %d", what, got, channelBytes)
				}
				return d
			}
		} else {
			n, _ = io.Copy(io.Discard, c)
			d := time.Since(start)
			c.Close()
			if n == channelBytes {
				<-done
				return d
			}
			if n > 0 {
				// A write can fill socket buffers before a refusal shows;
				// a short read cannot be early.
				b.Fatalf("moved %d bytes of %d from the %s", n, channelBytes, what)
			}
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	listener.Process.Kill()
	<-done
	b.Fatalf("no transfer through %s to the %s", addr, what)
	return 0
}

// countArrives waits for the listener to print its count (a line on out)
// and returns the time since start then; the listener's exit status
// follows from done.
func countArrives(start time.Time, out *syncBuffer, done <-chan error) (time.Duration, error) {
	for !strings.Contains(out.String(), "\n") {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("exited without printing a count")
			}
			return 0, err
		case <-time.After(2 * time.Millisecond):
		}
	}
	d := time.Since(start)
	return d, <-done
}
