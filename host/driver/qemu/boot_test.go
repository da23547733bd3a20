package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/driver"
)

// bootTimeout bounds a TCG boot on a loaded 2-core machine; a healthy one
// takes 1-3 s.
const bootTimeout = 2 * time.Minute

func testSpec(t testing.TB, g testGuest, dir string) driver.Spec {
	return driver.Spec{
		Name:      "test",
		Dir:       dir,
		Arch:      g.arch,
		CPUs:      2,
		MemoryMiB: 512,
		Kernel:    g.kernel,
		Initrds:   g.initrds,
	}
}

func startVM(t testing.TB, d *Driver, spec driver.Spec) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	v, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	vm := v.(*VM)
	t.Cleanup(func() {
		vm.Kill()
		vm.Wait()
	})
	return vm
}

// guestinitBanner is guestinit's first line on every connection.
const guestinitBanner = "SSH-2.0-guestinit"

// session is an open agent stream to guestinit.
type session struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, vm *VM) *session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	c, err := vm.DialAgent(ctx)
	if err != nil {
		t.Fatalf("DialAgent: %v\nconsole:\n%s", err, tail(vm.console))
	}
	return &session{t: t, conn: c, r: bufio.NewReader(c)}
}

// line reads one line, failing the test after a minute without one.
func (s *session) line() string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(time.Minute))
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("read from guest: %v", err)
	}
	return strings.TrimSuffix(l, "\n")
}

// do sends a command line and returns the guest's one-line answer.
func (s *session) do(cmd string) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.conn, "%s\n", cmd); err != nil {
		s.t.Fatalf("write to guest: %v", err)
	}
	return s.line()
}

func tail(path string) string {
	b, _ := driver.ReadTail(path, 0, 4<<10)
	return string(b)
}

// TestBootEcho boots guestinit under the host's accelerator and checks the
// agent connection end to end, the kernel command line the driver built,
// the guest's clock and RNG, concurrent streams, reconnection, the
// console, and Kill/Wait, for each guest architecture.
func TestBootEcho(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) { testBootEcho(t, arch) })
	}
}

func testBootEcho(t *testing.T, arch string) {
	g := echoGuest(t, arch)
	t.Log(g.desc)
	d := New(Options{})
	dir := t.TempDir()
	vm := startVM(t, d, testSpec(t, g, dir))
	t.Logf("accelerator %s, pid %d", vm.Accelerator(), vm.Pid())
	if vm.Pid() <= 0 {
		t.Fatalf("Pid() = %d", vm.Pid())
	}

	s := dial(t, vm)
	// DialAgent reads the start of the banner to know the guest listens:
	// the conn must replay it.
	if got := s.line(); got != guestinitBanner {
		t.Fatalf("first line = %q, want the banner", got)
	}
	if got := s.do("hello, guest"); got != "hello, guest" {
		t.Fatalf("echo = %q", got)
	}
	cmdline := s.do("cmdline")
	if vm.Accelerator() == AccelTCG {
		if !strings.Contains(" "+cmdline+" ", " maxcpus=1 ") {
			t.Errorf("guest command line %q lacks maxcpus=1 for 2 CPUs under TCG", cmdline)
		}
		if got := s.do("cpus"); got != "0" {
			t.Errorf("online CPUs at boot = %q, want 0 (maxcpus=1)", got)
		}
	}
	// The guest can bring the second CPU up once it is ready.
	if got := s.do("online"); got != "0-1" {
		t.Errorf("online CPUs after onlining = %q, want 0-1", got)
	}
	// The RTC gives the guest the host's wall clock at boot.
	guestTime, err := strconv.ParseInt(s.do("time"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(time.Unix(guestTime, 0)); d > 10*time.Minute || d < -10*time.Minute {
		t.Errorf("guest clock is %v off the host's (no RTC?)", d)
	}
	if got := s.do("rng"); got != "true" {
		t.Errorf("guest RNG not ready after boot (RDRAND or virtio-rng missing?): %s", got)
	}

	// Streams are independent: a second one works while the first is
	// open, and after the first is closed.
	s2 := dial(t, vm)
	if got := s2.line(); got != guestinitBanner {
		t.Fatalf("second stream: first line %q", got)
	}
	if got := s2.do("second"); got != "second" {
		t.Fatalf("echo on the second stream = %q", got)
	}
	s.conn.Close()
	s = dial(t, vm)
	if got := s.line(); got != guestinitBanner {
		t.Fatalf("after reconnecting: first line %q", got)
	}
	if got := s.do("again"); got != "again" {
		t.Fatalf("echo after reconnecting = %q", got)
	}
	if got := s2.do("still open"); got != "still open" {
		t.Fatalf("echo on the second stream after reconnecting = %q", got)
	}

	// A second QEMU for the same instance is refused, and the first one
	// keeps serving.
	vm2 := startVM(t, d, testSpec(t, g, dir))
	if err := vm2.Wait(); err == nil || !strings.Contains(err.Error(), "pid file") {
		t.Errorf("second QEMU in the same instance directory: Wait = %v, want the pid file lock error", err)
	}
	if got := s.do("still there"); got != "still there" {
		t.Fatalf("echo after a second start was refused = %q", got)
	}

	if err := vm.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := vm.Wait(); !errors.Is(err, ErrKilled) {
		t.Fatalf("Wait after Kill = %v, want ErrKilled", err)
	}
	if err := vm.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
	console, _ := os.ReadFile(filepath.Join(dir, ConsoleName))
	if !strings.Contains(string(console), "guestinit: serving on 10.0.2.15:2222") {
		t.Errorf("console lacks guestinit's output:\n%s", console)
	}
	for _, name := range []string{PidfileName, LogName} {
		if !fileExists(filepath.Join(dir, name)) {
			t.Errorf("%s missing from the instance directory", name)
		}
	}
}

// TestBootDataDiskLongPath boots from an instance directory whose QMP
// socket path is far beyond the unix socket limit, writes to the data disk
// with a flush, checks that a second VM cannot open the same disk, and
// checks that a guest shutdown is a clean exit that leaves the data on the
// host's file.
func TestBootDataDiskLongPath(t *testing.T) {
	g := echoGuest(t, "amd64")
	dir := filepath.Join(t.TempDir(), strings.Repeat("a-long-vmbox-home-", 8), "instances", "default")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if n := len(filepath.Join(dir, QMPSocketName)); n <= 108 {
		t.Fatalf("socket path is only %d bytes", n)
	}
	disk := filepath.Join(dir, "data.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 64<<20); err != nil {
		t.Fatal(err)
	}
	d := New(Options{})
	spec := testSpec(t, g, dir)
	spec.CPUs = 1
	spec.DataDisk = disk
	vm := startVM(t, d, spec)
	s := dial(t, vm)
	s.line() // banner
	const text = "nothing a user stored is ever lost"
	if got := s.do("disk-write " + text); got != "ok" {
		t.Fatalf("disk-write: %s", got)
	}
	if got := s.do(fmt.Sprintf("disk-read %d", len(text))); got != text {
		t.Fatalf("disk-read = %q", got)
	}

	// A second VM on the same disk must be refused by QEMU's image lock,
	// and the reason must reach the caller.
	dir2 := t.TempDir()
	spec2 := testSpec(t, g, dir2)
	spec2.CPUs = 1
	spec2.DataDisk = disk
	vm2 := startVM(t, d, spec2)
	err := vm2.Wait()
	if err == nil || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("second VM on the same disk: Wait = %v, want QEMU's lock error", err)
	}
	t.Logf("second VM: %v", err)

	if got := s.do("poweroff"); got != "bye" {
		t.Fatalf("poweroff: %s", got)
	}
	if err := vm.Wait(); err != nil {
		t.Fatalf("Wait after guest shutdown = %v, want nil", err)
	}
	b := make([]byte, len(text))
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != text {
		t.Fatalf("data disk holds %q (%v), want %q", b, err, text)
	}
}

// TestBootGuestPanic checks that a guest kernel panic, which QEMU reports
// as a clean exit, is reported by Wait with the panic message.
func TestBootGuestPanic(t *testing.T) {
	g := echoGuest(t, "amd64")
	vm := startVM(t, New(Options{}), testSpec(t, g, t.TempDir()))
	s := dial(t, vm)
	s.line()
	s.do("panic")
	err := vm.Wait()
	if err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("Wait after guest panic = %v, want the panic message", err)
	}
	t.Log(err)
}

// TestDialAgentQEMUFails checks that when QEMU refuses to start, DialAgent
// and Wait say why in QEMU's words rather than time out.
func TestDialAgentQEMUFails(t *testing.T) {
	needQEMU(t, "amd64")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory where the data disk should be: QEMU cannot open it.
	disk := filepath.Join(dir, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := driver.Spec{Name: "bad", Dir: dir, Arch: "amd64", CPUs: 1, MemoryMiB: 256, Kernel: kernel, DataDisk: disk}
	vm := startVM(t, New(Options{}), spec)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	_, err := vm.DialAgent(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "qemu") {
		t.Fatalf("DialAgent = %v, want QEMU's failure", err)
	}
	t.Log(err)
	werr := vm.Wait()
	if werr == nil || !strings.Contains(werr.Error(), disk) {
		t.Fatalf("Wait = %v, want QEMU's message naming %s", werr, disk)
	}
}

// TestBootRealImage boots the real image and checks that its agent
// speaks SSH on the forwarded port, also right after the host hung up on
// it mid-session.
func TestBootRealImage(t *testing.T) {
	g := realImage(t, 2)
	vm := startVM(t, New(Options{}), testSpec(t, g, t.TempDir()))
	for i := 0; i < 3; i++ {
		s := dial(t, vm)
		if l := s.line(); !strings.HasPrefix(l, "SSH-2.0-") {
			t.Fatalf("connection %d: agent's first line = %q, want an SSH banner", i, l)
		}
		fmt.Fprintf(s.conn, "SSH-2.0-vmbox-test\r\n")
		s.conn.Close()
	}
}

// TestBootRealImageRequestStop boots the real image and asks it to power
// off through QEMU (QMP system_powerdown, the ACPI power button): the
// guest's init must shut down and QEMU exit cleanly.
func TestBootRealImageRequestStop(t *testing.T) {
	g := realImage(t, 1)
	vm := startVM(t, New(Options{}), testSpec(t, g, t.TempDir()))
	// The power button's drivers load once the host says the start is
	// done, as the host process does.
	s := dial(t, vm)
	cfg := &ssh.ClientConfig{User: "vmbox", Auth: []ssh.AuthMethod{ssh.PublicKeys(g.client)}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}
	conn, _, reqs, err := ssh.NewClientConn(s.conn, "agent", cfg)
	if err != nil {
		t.Fatalf("SSH handshake with the agent: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	if _, _, err := conn.SendRequest(sshproto.ReqBooted, true, nil); err != nil {
		t.Fatalf("send %s: %v", sshproto.ReqBooted, err)
	}
	conn.Close()
	time.Sleep(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := vm.RequestStop(ctx); err != nil {
		t.Fatalf("RequestStop: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- vm.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("Wait after RequestStop = %v, want a clean exit\n%s", err, tail(vm.console))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the guest did not power off within 30 s of the power button\n%s", tail(vm.console))
	}
	t.Logf("powered off %v after the power button", time.Since(start).Round(time.Millisecond))
	if c := tail(vm.console); !strings.Contains(c, "power button pressed") {
		t.Errorf("the console does not show the guest's init seeing the power button:\n%s", c)
	}
	if err := vm.RequestStop(ctx); err != nil {
		t.Errorf("RequestStop after exit = %v, want nil", err)
	}
}

// TestBootForceStop ends a running guest with QMP quit.
func TestBootForceStop(t *testing.T) {
	g := echoGuest(t, "amd64")
	vm := startVM(t, New(Options{}), testSpec(t, g, t.TempDir()))
	s := dial(t, vm)
	s.line()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := vm.ForceStop(ctx); err != nil {
		t.Fatalf("ForceStop: %v", err)
	}
	if err := vm.Wait(); err != nil {
		t.Fatalf("Wait after ForceStop = %v, want nil", err)
	}
	if err := vm.ForceStop(ctx); err != nil {
		t.Errorf("ForceStop after exit = %v, want nil", err)
	}
}

// TestStartHostForwardTaken checks that QEMU failing to bind the agent's
// port (another process took it) is recognised, which is what makes Start
// try again with another port.
func TestStartHostForwardTaken(t *testing.T) {
	g := echoGuest(t, "amd64")
	d := New(Options{})
	spec := testSpec(t, g, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := d.config(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := d.binary("amd64")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c.AgentPort = l.Addr().(*net.TCPAddr).Port
	v, err := d.start(bin, c, spec.Name, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		v.Kill()
		v.Wait()
	}()
	err = v.waitRunning(ctx)
	if !errors.Is(err, errHostForward) {
		t.Fatalf("waitRunning with the agent's port taken = %v, want errHostForward", err)
	}
	t.Log(err)
}

// TestStartWithoutArchCapabilities checks that Start boots a VM where KVM
// refuses QEMU's write of the ARCH_CAPABILITIES MSR. The QEMU it runs is a
// script that fails the way such a host makes QEMU fail (the message, then
// abort) unless -cpu host drops the feature, and otherwise runs the real
// QEMU under TCG, so the test needs no KVM.
func TestStartWithoutArchCapabilities(t *testing.T) {
	g := echoGuest(t, "amd64")
	// Under TCG the microvm guest needs to be told its TSC's frequency,
	// which a command line made for KVM leaves out.
	tcg := KernelCmdline(KernelParams{Arch: "amd64", Accel: AccelTCG, TSCKHz: New(Options{}).guestTSC()})
	kvm := KernelCmdline(KernelParams{Arch: "amd64", Accel: AccelKVM})
	var extra []string
	for _, w := range tcg {
		if !slices.Contains(kvm, w) {
			extra = append(extra, w)
		}
	}
	tcgTimingWords := strings.Join(extra, " ")
	argsLog := filepath.Join(t.TempDir(), "args.log")
	fake := fakeQEMU(t, func(real string) string {
		return `echo "$*" >> ` + argsLog + `
case " $* " in
*" host,-arch-capabilities "*) ;;
*" host "*) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$ ;;
esac
prev=
for a do
  shift
  case "$prev/$a" in
  -accel/kvm) a=tcg ;;
  -cpu/host,-arch-capabilities) a=` + tcgX86CPU + ` ;;
  -append/*) a="$a ` + tcgTimingWords + `" ;;
  esac
  set -- "$@" "$a"
  prev=$a
done
exec ` + real + ` "$@"
`
	})
	d := New(Options{Binary: fake, Accel: AccelKVM})
	spec := testSpec(t, g, t.TempDir())
	vm := startVM(t, d, spec)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	c, err := vm.DialAgent(ctx)
	if err != nil {
		console, _ := os.ReadFile(filepath.Join(spec.Dir, ConsoleName))
		t.Fatalf("DialAgent after the retry: %v\nconsole:\n%s", err, console)
	}
	c.Close()
	b, err := os.ReadFile(argsLog)
	if err != nil {
		t.Fatal(err)
	}
	runs := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(runs) != 2 || strings.Contains(runs[0], "arch-capabilities") || !strings.Contains(runs[1], "-cpu host,-arch-capabilities") {
		t.Fatalf("QEMU runs = %q, want one with -cpu host, then one with -cpu host,-arch-capabilities", runs)
	}
}

// TestDialAgentEndsWhenTheGuestHalts checks that DialAgent gives up once
// QEMU holds a guest that will never answer, instead of waiting out its
// context. The guest has no init, so its kernel panics and reboots; the
// QEMU it runs is a script that adds -no-shutdown, which makes QEMU keep
// the stopped guest in run state "shutdown", as it keeps one in
// "internal-error" after KVM fails.
func TestDialAgentEndsWhenTheGuestHalts(t *testing.T) {
	g := echoGuest(t, "amd64")
	fake := fakeQEMU(t, func(real string) string { return "exec " + real + " \"$@\" -no-shutdown\n" })
	spec := testSpec(t, g, t.TempDir())
	spec.Initrds = nil
	vm := startVM(t, New(Options{Binary: fake}), spec)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	c, err := vm.DialAgent(ctx)
	if err == nil {
		c.Close()
		t.Fatal("DialAgent answered for a guest without init")
	}
	if !strings.Contains(err.Error(), "run state shutdown") {
		t.Fatalf("DialAgent = %v, want an error naming run state shutdown", err)
	}
	t.Log(err)
}

// fakeQEMU writes a shell script that stands in for QEMU and returns its
// path; body, given the real amd64 QEMU's path, is the script after its
// #! line.
func fakeQEMU(t *testing.T, body func(real string) string) string {
	t.Helper()
	real, err := New(Options{}).binary("amd64")
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "qemu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"+body(real)), 0o755); err != nil {
		t.Fatal(err)
	}
	return fake
}
