// Package qemu is the driver that boots vmbox VMs with QEMU, on every host
// OS: it picks the emulator and accelerator (KVM, HVF, WHPX with a TCG
// fallback, else TCG), assembles the kernel command line and QEMU's argv
// from boot-time measurements, starts QEMU so that it dies with its owner,
// reaches the guest agent over TCP through user networking's host
// forwarding, and controls QEMU over QMP.
//
// x86 guests boot the PVH vmlinux directly on the microvm machine with
// virtio-mmio devices; arm64 guests boot the Image on the virt machine with
// virtio-pci devices. GuestModules names the modules the guest must load
// for them.
//
// Everything QEMU leaves lives in the instance directory: qemu.pid (locked
// by QEMU, so a second QEMU for the instance refuses to start), qemu.log
// (its stdout and stderr, quoted when it fails), qmp.sock, and
// initrd.combined when several initrds are given.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
)

// Options configures the driver. The zero value picks everything itself.
type Options struct {
	// Binary is the QEMU system emulator to run for every guest
	// architecture. Empty means $VMBOX_QEMU, else qemu-system-x86_64 or
	// qemu-system-aarch64 (by guest architecture) on PATH or where QEMU's
	// installers put it.
	Binary string
	// Accel forces an accelerator: "kvm", "hvf", "whpx" or "tcg". Empty
	// picks the host's hardware accelerator when it is usable, else TCG.
	Accel string
	// Arch is the guest architecture Available checks for (amd64 or arm64);
	// empty means the host's. Start uses Spec.Arch.
	Arch string

	// diskCache overrides DefaultDiskCache; for the benchmark that compares
	// cache modes.
	diskCache string
}

// Driver starts QEMU VMs.
type Driver struct {
	opts   Options
	source string // where opts.Binary came from, for messages

	tscOnce sync.Once
	tscKHz  int64
}

var (
	_ driver.Driver             = (*Driver)(nil)
	_ driver.FolderExporter     = (*VM)(nil)
	_ driver.EmulationExplainer = (*VM)(nil)
	_ driver.RunStateReporter   = (*VM)(nil)
	_ driver.Pauser             = (*VM)(nil)
)

// New returns a QEMU driver. It reads VMBOX_QEMU now when opts.Binary is
// empty.
func New(opts Options) *Driver {
	d := &Driver{opts: opts, source: "the driver options"}
	if d.opts.Binary == "" {
		d.opts.Binary = os.Getenv(EnvBinary)
		d.source = EnvBinary
	}
	if d.opts.Arch == "" {
		d.opts.Arch = runtime.GOARCH
	}
	return d
}

// Name is "qemu".
func (d *Driver) Name() string { return "qemu" }

// Available reports, in one line, why QEMU cannot run guests of
// Options.Arch here (typically: which package to install), or nil.
func (d *Driver) Available() error {
	if err := checkArch(d.opts.Arch); err != nil {
		return err
	}
	if d.opts.Accel != "" {
		if err := checkAccel(d.opts.Accel); err != nil {
			return err
		}
	}
	_, err := d.binary(d.opts.Arch)
	return err
}

func (d *Driver) binary(arch string) (string, error) {
	return findBinary(d.opts.Binary, d.source, runtime.GOOS, arch, readOSRelease)
}

// Accel returns the accelerator a guest of arch would get and, when that
// is TCG for want of a usable hardware accelerator, why.
func (d *Driver) Accel(arch string) (accel, emulated string) {
	if d.opts.Accel != "" {
		return d.opts.Accel, ""
	}
	return chooseAccel(runtime.GOOS, runtime.GOARCH, arch, accelProblem)
}

func (d *Driver) guestTSC() int64 {
	d.tscOnce.Do(func() { d.tscKHz = guestTSCKHz(runtime.GOARCH) })
	return d.tscKHz
}

func checkArch(arch string) error {
	switch arch {
	case "amd64", "arm64":
		return nil
	}
	return fmt.Errorf("guest architecture %q is not supported (want amd64 or arm64)", arch)
}

// GuestNetwork is the static address QEMU's user networking expects
// (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3): no DHCP round trip at
// boot. Proxy ARP lets ForwardToGuest reach containers' addresses.
func (d *Driver) GuestNetwork() vmconfig.Network {
	return vmconfig.Network{Mode: vmconfig.NetworkStatic, Address: SlirpGuestAddress, Gateway: SlirpGateway, DNS: []string{SlirpDNS}, ProxyARP: true}
}

// GuestModules are the modules for the devices the agent's first answer
// needs: virtio-mmio on x86's microvm, virtio-pci on arm64's virt
// machine, then the network (the agent's channel too). On arm64 the RNG
// comes first as well: without it the kernel's random pool may not be
// ready for the agent's SSH keys. An x86 CPU (RDRAND) has seeded the pool
// before init runs, so there the RNG is late. The disk's driver is loaded
// when the guest mounts its data disk, after the start.
func (d *Driver) GuestModules(arch string) []string {
	if arch == "arm64" {
		return []string{"virtio_pci", "virtio_rng", "virtio_net"}
	}
	return []string{"virtio_mmio", "virtio_net"}
}

// GuestLateModules are the power button's drivers, which RequestStop
// needs: ACPI's button on x86 microvm and evdev, through which the guest's
// init reads the key; then the memory balloon, whose free page reporting
// returns freed guest memory to the host, and on x86 the RNG. On arm64
// virt (no ACPI without firmware) the button would be gpio-keys on the
// PL061 GPIO, but Debian's cloud arm64 kernel has no gpio-keys driver,
// built in or as a module: an arm64 guest has no power button, and a stop
// that the agent does not take goes on to QMP quit.
func (d *Driver) GuestLateModules(arch string) []string {
	if arch == "arm64" {
		return []string{"evdev", "virtio_balloon"}
	}
	return []string{"button", "evdev", "virtio_balloon", "virtio_rng"}
}

// GuestAgent is TCP on api.AgentPort: Args forwards a host loopback port
// there through user networking.
func (d *Driver) GuestAgent() vmconfig.Agent {
	return vmconfig.Agent{Transport: vmconfig.AgentTCP, Port: api.AgentPort}
}

// Start boots the VM described by spec and returns once QEMU is running
// (its QMP socket answers) or has exited (Wait and DialAgent then say
// why). QEMU's stdout and stderr go to qemu.log in spec.Dir; its pid to
// qemu.pid.
//
// The agent's host port is a free loopback port picked here. Another
// process may take it between the pick and QEMU's bind; QEMU then fails
// to set up the forwarding, and Start tries once more with another port.
// Where KVM refuses the CPU's ARCH_CAPABILITIES MSR, Start tries once more
// without that feature (errArchCapabilities).
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.VM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := d.config(ctx, spec)
	if err != nil {
		return nil, err
	}
	bin, err := d.binary(c.Arch)
	if err != nil {
		return nil, err
	}
	fsd, fsdErr := hostVirtiofsd()
	retriedPort := false
	for {
		// Per attempt: the folders' virtiofsd processes end with the QEMU
		// they served.
		stopFolders := func() {}
		c.Folders = nil
		if len(spec.Folders) > 0 && fsdErr == nil {
			c.Folders, stopFolders = startFolders(ctx, fsd, filepath.Dir(c.Pidfile), spec.Folders)
		}
		if c.AgentPort, err = freeLoopbackPort(); err != nil {
			stopFolders()
			return nil, fmt.Errorf("start VM %s: %w", spec.Name, err)
		}
		if c.ForwardPort, err = freeLoopbackPort(); err != nil {
			stopFolders()
			return nil, fmt.Errorf("start VM %s: %w", spec.Name, err)
		}
		v, err := d.start(bin, c, spec.Name, stopFolders)
		if err != nil {
			stopFolders()
			return nil, err
		}
		err = v.waitRunning(ctx)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, errHostForward) && !retriedPort:
			retriedPort = true
			stopFolders()
			continue
		case errors.Is(err, errArchCapabilities) && !c.NoArchCapabilities:
			c.NoArchCapabilities = true
			stopFolders()
			continue
		}
		v.Kill()
		v.Wait()
		stopFolders()
		return nil, fmt.Errorf("start VM %s: %w", spec.Name, err)
	}
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs QEMU for c; stopFolders ends the folders' virtiofsd
// processes once QEMU has exited (they would end on their own when QEMU
// disconnects, but not if QEMU never connected).
func (d *Driver) start(bin string, c Config, name string, stopFolders func()) (*VM, error) {
	dir := filepath.Dir(c.Pidfile)
	// The pid file and QMP socket of an earlier QEMU are left alone: QEMU
	// locks its pid file, so a second QEMU for the same instance exits
	// ("Cannot lock pid file") before it touches the socket of the first,
	// and it replaces a stale socket itself.
	logPath := filepath.Join(dir, LogName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start VM %s: %w", name, err)
	}
	defer logf.Close()
	var consoleStart int64
	if st, err := os.Stat(c.Console); err == nil {
		consoleStart = st.Size()
	}

	cmd := exec.Command(bin, Args(c)...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	v := &VM{
		name:         name,
		accel:        c.Accel,
		emulated:     c.Emulated,
		agentPort:    c.AgentPort,
		forwardPort:  c.ForwardPort,
		qmpSocket:    filepath.Join(dir, c.QMPSocket),
		logPath:      logPath,
		console:      c.Console,
		consoleStart: consoleStart,
		done:         make(chan struct{}),
	}
	for _, f := range c.Folders {
		v.folders = append(v.folders, f.Tag)
	}
	// QEMU may exit before startProcess returns; v is complete only then.
	complete := make(chan struct{})
	if err := startProcess(cmd, func(err error) { <-complete; stopFolders(); v.exited(err) }); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	v.pid = cmd.Process.Pid
	v.kill = cmd.Process.Kill
	close(complete)
	return v, nil
}

// config validates spec and resolves everything Args needs.
func (d *Driver) config(ctx context.Context, spec driver.Spec) (Config, error) {
	fail := func(err error) (Config, error) {
		return Config{}, fmt.Errorf("VM %s: %w", spec.Name, err)
	}
	if spec.Arch == "" {
		spec.Arch = d.opts.Arch
	}
	if err := checkArch(spec.Arch); err != nil {
		return fail(err)
	}
	// Assigned only on success: fail names the VM from spec.
	resolved, err := spec.Resolve(ConsoleName)
	if err != nil {
		return fail(err)
	}
	spec = resolved
	accel, emulated := d.Accel(spec.Arch)
	if err := checkAccel(accel); err != nil {
		return fail(err)
	}
	initrd, err := prepareInitrd(ctx, spec.Dir, spec.Initrds)
	if err != nil {
		return fail(err)
	}
	var tsc int64
	if spec.Arch == "amd64" && (accel == AccelTCG || accel == AccelWHPX) {
		tsc = d.guestTSC()
	}
	return Config{
		Name:      spec.Name,
		Arch:      spec.Arch,
		Accel:     accel,
		Emulated:  emulated,
		CPUs:      spec.CPUs,
		MemoryMiB: spec.MemoryMiB,
		Kernel:    spec.Kernel,
		Initrd:    initrd,
		Cmdline: KernelCmdline(KernelParams{
			Arch: spec.Arch, Accel: accel, CPUs: spec.CPUs, TSCKHz: tsc, Extra: spec.Cmdline,
		}),
		DataDisk:  spec.DataDisk,
		DiskCache: d.opts.diskCache,
		Console:   spec.Console,
		QMPSocket: QMPSocketName,
		Pidfile:   filepath.Join(spec.Dir, PidfileName),
	}, nil
}
