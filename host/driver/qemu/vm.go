package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vmbox/vmbox/host/driver"
)

// ErrKilled is what Wait returns (wrapped) after Kill stopped the VM.
var ErrKilled = errors.New("killed by vmbox")

// VM is one running QEMU process.
type VM struct {
	name         string
	pid          int
	accel        string
	socket       string // absolute path of the agent socket
	logPath      string // QEMU's stdout and stderr
	console      string
	consoleStart int64 // console size when QEMU started; this boot's output follows
	kill         func() error

	done    chan struct{} // closed once QEMU has exited and waitErr is set
	waitErr error

	mu         sync.Mutex
	killed     bool
	streamOpen bool
}

// Pid is QEMU's process ID.
func (v *VM) Pid() int { return v.pid }

// Accelerator is the accelerator QEMU was asked to use. "whpx" means WHPX
// with a TCG fallback: QEMU does not tell which one it got.
func (v *VM) Accelerator() string { return v.accel }

// Wait blocks until QEMU has exited. It returns nil when the guest shut
// down (or rebooted: -no-reboot turns that into an exit); an error wrapping
// ErrKilled after Kill; an error quoting QEMU's last complaint when QEMU
// failed; and an error quoting the panic message when the guest kernel
// panicked (panic=-1 reboots, which QEMU reports as a clean exit).
// Any number of goroutines may call it.
func (v *VM) Wait() error {
	<-v.done
	return v.waitErr
}

// Kill sends QEMU SIGKILL (TerminateProcess on Windows) without asking the
// guest. Killing a VM that has already exited is not an error.
func (v *VM) Kill() error {
	select {
	case <-v.done:
		return nil
	default:
	}
	v.mu.Lock()
	v.killed = true
	v.mu.Unlock()
	if err := v.kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill qemu (pid %d): %w", v.pid, err)
	}
	return nil
}

// exited records how QEMU ended; called once, by the goroutine that waits
// for it.
func (v *VM) exited(err error) {
	v.mu.Lock()
	killed := v.killed
	v.mu.Unlock()
	switch {
	case err != nil && killed:
		v.waitErr = fmt.Errorf("qemu (pid %d): %w", v.pid, ErrKilled)
	case err != nil:
		msg := lastLines(v.logPath, 2)
		if msg == "" {
			msg = "no message; see " + v.logPath
		}
		v.waitErr = fmt.Errorf("qemu (pid %d) failed: %w: %s", v.pid, err, msg)
	default:
		if p := driver.PanicLine(v.console, v.consoleStart); p != "" {
			v.waitErr = fmt.Errorf("guest kernel panicked: %s (console: %s)", p, v.console)
		}
	}
	close(v.done)
}

// DialAgent connects to the agent's virtio-serial port and performs the
// hello/ready handshake (see handshake), retrying the connection until QEMU
// has created the socket. ctx bounds the wait: pass the boot timeout.
//
// Virtio-serial carries one stream: while the returned conn is open, a
// second DialAgent fails at once rather than queue behind it. Close the
// conn to allow the next one. If QEMU exits meanwhile, the error says why.
func (v *VM) DialAgent(ctx context.Context) (net.Conn, error) {
	v.mu.Lock()
	if v.streamOpen {
		v.mu.Unlock()
		return nil, errors.New("an agent stream is already open (virtio-serial carries one at a time)")
	}
	v.streamOpen = true
	v.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			v.release()
		}
	}()

	path, cleanup, err := socketAlias(v.socket)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	var d net.Dialer
	delay := 5 * time.Millisecond
	var c net.Conn
	for {
		if err := v.exitErr("before its agent socket opened"); err != nil {
			return nil, err
		}
		c, err = d.DialContext(ctx, "unix", path)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to agent socket %s: %w", v.socket, ctx.Err())
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to agent socket %s: %w (last error: %v)", v.socket, ctx.Err(), err)
		case <-v.done:
			t.Stop()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
	conn, err := handshake(ctx, c)
	if err != nil {
		c.Close()
		// A closed connection usually means QEMU went away: give its exit a
		// moment to be reaped and report that instead.
		select {
		case <-v.done:
			return nil, v.exitErr("before the agent was ready")
		case <-time.After(200 * time.Millisecond):
		}
		return nil, err
	}
	ok = true
	return &agentConn{Conn: conn, release: v.release}, nil
}

func (v *VM) release() {
	v.mu.Lock()
	v.streamOpen = false
	v.mu.Unlock()
}

// exitErr returns an error saying QEMU exited (and why) if it has.
func (v *VM) exitErr(when string) error {
	select {
	case <-v.done:
	default:
		return nil
	}
	if v.waitErr != nil {
		return fmt.Errorf("VM %s stopped %s: %w", v.name, when, v.waitErr)
	}
	return fmt.Errorf("VM %s shut down %s", v.name, when)
}

// agentConn frees the VM's one stream when closed.
type agentConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *agentConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// lastLines returns the last n non-empty lines of the file at path, joined
// by " / ", or "" if it cannot be read.
func lastLines(path string, n int) string {
	b, err := driver.ReadTail(path, 0, 8<<10)
	if err != nil {
		return ""
	}
	var out []string
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " / ")
}
