package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	emulated     string // why accel is TCG, if it was not the choice
	agentPort    int    // host loopback port forwarded to the agent
	forwardPort  int    // host loopback port forwarded to the agent's forwarding gateway
	qmpSocket    string // absolute path of the QMP socket
	logPath      string // QEMU's stdout and stderr
	console      string
	consoleStart int64 // console size when QEMU started; this boot's output follows
	kill         func() error
	folders      []string // tags of the virtiofs devices

	done    chan struct{} // closed once QEMU has exited and waitErr is set
	waitErr error

	mu     sync.Mutex
	killed bool
}

// ExportedFolders are the tags of the folders the guest has as virtiofs
// devices.
func (v *VM) ExportedFolders() []string { return v.folders }

// Pid is QEMU's process ID.
func (v *VM) Pid() int { return v.pid }

// EmulatedBecause implements driver.EmulationExplainer.
func (v *VM) EmulatedBecause() string { return v.emulated }

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

// RequestStop asks the guest to power off with QMP system_powerdown: an
// ACPI power-button event on x86 microvm, a GPIO power key on arm64 virt.
// The guest's init reacts to it as to SIGTERM (a clean shutdown), and
// QEMU then exits.
func (v *VM) RequestStop(ctx context.Context) error {
	return v.qmpUnlessExited(ctx, "system_powerdown")
}

// ForceStop ends QEMU with QMP quit, without the guest. QEMU flushes its
// own caches (the data disk's writeback cache) before it exits, unlike
// after Kill; Wait then returns nil.
func (v *VM) ForceStop(ctx context.Context) error {
	return v.qmpUnlessExited(ctx, "quit")
}

// Pause implements driver.Pauser with QMP stop: QEMU stops running the
// vCPUs (and with them the guest's virtual clock) but keeps serving its
// devices' host side.
func (v *VM) Pause(ctx context.Context) error {
	return v.qmpUnlessExited(ctx, "stop")
}

// Resume implements driver.Pauser with QMP cont.
func (v *VM) Resume(ctx context.Context) error {
	return v.qmpUnlessExited(ctx, "cont")
}

func (v *VM) qmpUnlessExited(ctx context.Context, command string) error {
	if v.hasExited() {
		return nil
	}
	if _, err := QMP(ctx, v.qmpSocket, command, nil); err != nil {
		if v.hasExited() {
			return nil
		}
		return fmt.Errorf("VM %s: %w", v.name, err)
	}
	return nil
}

func (v *VM) hasExited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
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

// agentAttempt bounds one connection attempt to the agent. User
// networking accepts the host's connection at once and only then connects
// to the guest: while the guest's interface is not up yet, that connection
// neither answers nor fails until user networking retransmits its SYN.
// DialRetry therefore starts a fresh attempt (a fresh SYN) every
// driver.DialInterval without waiting for this bound; it only ends
// attempts that will never be answered.
const agentAttempt = 2 * time.Second

// sshBannerPrefix is how an SSH server's first line begins (RFC 4253 4.2).
const sshBannerPrefix = "SSH-"

// DialAgent connects to the agent through the forwarded loopback port and
// returns once the agent's SSH server has sent the start of its banner:
// user networking accepts a connection even when nothing in the guest
// listens, and then closes it. It retries (driver.DialRetry) until ctx
// ends or QEMU exits; the error says why. Any number of connections may be
// open. The returned conn replays the banner bytes it read.
//
// A guest QEMU has halted for good (a KVM internal error, a disk error
// that stops the VM, a guest panic QEMU was told to hold) also ends it:
// QEMU stays alive then, and without this a start would wait out its
// whole deadline.
func (v *VM) DialAgent(ctx context.Context) (net.Conn, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(v.agentPort))
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	halted, haltedIn := v.watchHalt(wctx)
	c, err := driver.DialRetry(ctx, func(ctx context.Context) (net.Conn, error) {
		return dialBanner(ctx, addr, agentAttempt)
	}, halted)
	if errors.Is(err, driver.ErrVMExited) {
		if state := haltedIn(); state != "" {
			return nil, fmt.Errorf("VM %s halted (QEMU run state %s) before its agent answered: %s",
				v.name, state, v.haltDetail())
		}
		return nil, v.exitErr("before its agent answered")
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the agent of VM %s at %s: %w", v.name, addr, err)
	}
	return c, nil
}

// DialForward connects to the agent's forwarding gateway through its
// forwarded loopback port.
func (v *VM) DialForward(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", v.GatewayAddr())
	if err != nil {
		return nil, fmt.Errorf("connect to the forwarding gateway of VM %s: %w", v.name, err)
	}
	return c, nil
}

// GatewayAddr implements driver.LoopbackGateway.
func (v *VM) GatewayAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(v.forwardPort))
}

// dialBanner connects to addr and reads the SSH banner's prefix, within
// timeout.
func dialBanner(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	banner := make([]byte, len(sshBannerPrefix))
	_, err = io.ReadFull(c, banner)
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("no SSH banner: %w", ctx.Err())
	}
	if err != nil {
		c.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("connection closed without an SSH banner (the agent is not listening yet)")
		}
		return nil, fmt.Errorf("read SSH banner: %w", err)
	}
	if string(banner) != sshBannerPrefix {
		c.Close()
		return nil, fmt.Errorf("the agent's port answered %q, not an SSH banner", banner)
	}
	return &prefixConn{Conn: c, pending: banner}, nil
}

// prefixConn is a net.Conn whose first reads return pending.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// haltPoll is how often DialAgent asks QEMU for its run state.
const haltPoll = time.Second

// haltedStates are QMP run states a guest does not leave by itself.
var haltedStates = map[string]bool{
	"internal-error": true,
	"io-error":       true,
	"guest-panicked": true,
	"shutdown":       true,
}

// watchHalt returns a channel closed when QEMU exits or its guest halts
// (haltedStates), until ctx ends, and a function that returns the halted
// run state, or "" if QEMU exited instead (or neither happened).
func (v *VM) watchHalt(ctx context.Context) (<-chan struct{}, func() string) {
	ended := make(chan struct{})
	var state atomic.Value
	state.Store("")
	go func() {
		t := time.NewTicker(haltPoll)
		defer t.Stop()
		for {
			select {
			case <-v.done:
				close(ended)
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			qctx, cancel := context.WithTimeout(ctx, haltPoll)
			s, err := v.RunState(qctx)
			cancel()
			if err == nil && haltedStates[s] {
				state.Store(s)
				close(ended)
				return
			}
		}
	}()
	return ended, func() string { return state.Load().(string) }
}

// RunState implements driver.RunStateReporter with QMP query-status.
func (v *VM) RunState(ctx context.Context) (string, error) {
	raw, err := QMP(ctx, v.qmpSocket, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("qmp query-status: %w", err)
	}
	return st.Status, nil
}

// haltDetail says why the guest halted, as far as QEMU's log (a KVM or
// disk error) or the console (a kernel panic) tell.
func (v *VM) haltDetail() string {
	if l := firstLine(v.logPath); l != "" {
		return l + " (see " + v.logPath + ")"
	}
	if p := driver.PanicLine(v.console, v.consoleStart); p != "" {
		return "guest kernel panicked: " + p + " (see " + v.console + ")"
	}
	return "see " + v.console
}

// firstLine returns the first non-empty line of the file at path, where
// QEMU says what went wrong before it dumps the registers.
func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// errHostForward is what waitRunning returns (wrapped) when QEMU could not
// forward the agent's port, typically because another process took it.
var errHostForward = errors.New("qemu could not forward the agent's port")

// errArchCapabilities is what waitRunning returns (wrapped) when KVM
// refused QEMU's write of IA32_ARCH_CAPABILITIES (MSR 0x10a) and QEMU
// aborted before the guest ran. Nested KVM hosts do this (seen in a
// Firecracker microVM with a 6.18 kernel, and on hosted CI runners);
// QEMU's -cpu host then needs the feature off.
var errArchCapabilities = errors.New("kvm refused the CPU's ARCH_CAPABILITIES MSR")

// archCapabilitiesFailure is how QEMU reports that refusal in its log.
const archCapabilitiesFailure = "failed to set MSR 0x10a"

// hostForwardFailure is how QEMU says it could not bind a hostfwd port.
const hostForwardFailure = "Could not set up host forwarding rule"

// waitRunning returns once QEMU answers on its QMP socket, which it does
// only after every device and backend (the port forwarding among them) is
// set up, or once QEMU has exited. It returns an error wrapping
// errHostForward when QEMU exited for want of the agent's port, nil when
// it exited for another reason (Wait reports that), and ctx's error when
// ctx ends first.
func (v *VM) waitRunning(ctx context.Context) error {
	for {
		select {
		case <-v.done:
			log, err := os.ReadFile(v.logPath)
			switch {
			case err != nil:
			case strings.Contains(string(log), hostForwardFailure):
				return fmt.Errorf("%w: %s", errHostForward, lastLines(v.logPath, 1))
			case strings.Contains(string(log), archCapabilitiesFailure):
				return fmt.Errorf("%w: %s", errArchCapabilities, lastLines(v.logPath, 2))
			}
			return nil
		default:
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := QMP(actx, v.qmpSocket, "query-status", nil)
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for qemu to start: %w (last error: %v)", ctx.Err(), err)
		case <-v.done:
			t.Stop()
		case <-t.C:
		}
	}
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
