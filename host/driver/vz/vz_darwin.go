//go:build darwin && cgo

package vz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	vzf "github.com/Code-Hex/vz/v3"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
)

// Threading: Code-Hex/vz gives every VM its own serial dispatch queue and
// runs each framework call on it (completion handlers included), so the
// calls below may come from any goroutine. Only the graphical window
// (StartGraphicApplication, unused here) must run on the main thread. The
// VM lives in this process and ends with it.

// ErrKilled is what Wait returns (wrapped) after Kill stopped the VM.
var ErrKilled = errors.New("killed by vmbox")

// Driver starts VMs with Virtualization.framework.
type Driver struct{}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Pauser = (*VM)(nil)
)

// New returns the vz driver. It returns the interface because the
// concrete type differs between this build and the others.
func New() driver.Driver { return &Driver{} }

// Name is "vz".
func (*Driver) Name() string { return "vz" }

// GuestModules are the modules for the virtio-pci devices Start gives a
// guest of either architecture.
func (*Driver) GuestModules(string) []string { return guestModules() }

// GuestLateModules are loaded by the guest once the host has reached
// the agent.
func (*Driver) GuestLateModules(arch string) []string { return guestLateModules(arch) }

// GuestAgent is vsock on api.AgentPort.
func (*Driver) GuestAgent() vmconfig.Agent { return GuestAgent() }

// GuestNetwork is the guest network configuration the host process must
// write into the instance configuration for this driver: DHCP from the
// NAT attachment.
func (*Driver) GuestNetwork() vmconfig.Network { return GuestNetwork() }

// Available reports, in one line, why Virtualization.framework cannot run
// VMs for this process, or nil: macOS too old, an x86 binary translated by
// Rosetta, a binary without the virtualization entitlement, or a Mac
// without hardware virtualization.
func (*Driver) Available() error {
	ver, err := syscall.Sysctl("kern.osproductversion")
	if err != nil {
		return fmt.Errorf("the vz driver cannot tell the macOS version: %w", err)
	}
	if err := checkMacOS(ver); err != nil {
		return err
	}
	if t, err := syscall.SysctlUint32("sysctl.proc_translated"); err == nil && t == 1 {
		return errors.New("this is the x86 vmbox running under Rosetta, which cannot use Virtualization.framework: install the arm64 build, or use --driver qemu")
	}
	return probe()
}

// probe validates a minimal configuration. The framework checks the
// process's entitlement and the hardware before anything else, so this
// fails as the real configuration would, without booting anything. The
// executable stands in for the kernel (the boot loader wants an existing
// file); whatever else validation says about that stand-in is ignored.
func probe() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("the vz driver cannot find its executable: %w", err)
	}
	bl, err := vzf.NewLinuxBootLoader(exe)
	if err != nil {
		return fmt.Errorf("vz probe: %w", err)
	}
	cfg, err := vzf.NewVirtualMachineConfiguration(bl,
		vzf.VirtualMachineConfigurationMinimumAllowedCPUCount(),
		max(vzf.VirtualMachineConfigurationMinimumAllowedMemorySize(), MinMemoryMiB<<20))
	if err != nil {
		return fmt.Errorf("vz probe: %w", err)
	}
	if _, err := cfg.Validate(); err != nil {
		return validationError(err.Error(), exe)
	}
	// Anything else wrong with the probe is about the probe, not the
	// host: Start validates the real configuration.
	return nil
}

// Start boots the VM described by spec and returns once the framework
// reports it running. State changes and errors go to vz.log in spec.Dir;
// the guest console to spec.Console (appended to).
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.VM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := resolve(ctx, spec, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (driver.VM, error) {
		return nil, fmt.Errorf("VM %s: %w", c.Name, err)
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, LogName), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fail(err)
	}
	v := &VM{
		name:         c.Name,
		log:          logf,
		console:      c.Console,
		consoleStart: fileSize(c.Console),
		done:         make(chan struct{}),
	}
	v.logf("starting: %d CPUs, %d MiB, kernel %s, initrd %s, cmdline %q", c.CPUs, c.MemoryMiB, c.Kernel, c.Initrd, c.Cmdline)
	cfg, folders, err := machineConfig(c)
	if err != nil {
		v.logf("configuration: %v", err)
		logf.Close()
		return fail(err)
	}
	vm, err := vzf.NewVirtualMachine(cfg)
	if err != nil {
		v.logf("create: %v", err)
		logf.Close()
		return fail(fmt.Errorf("create VM: %w", err))
	}
	socks := vm.SocketDevices()
	if len(socks) != 1 {
		logf.Close()
		return fail(fmt.Errorf("the VM has %d vsock devices, want 1", len(socks)))
	}
	v.vm, v.sock, v.folders = vm, socks[0], folders
	if err := vm.Start(); err != nil {
		v.logf("start: %v", err)
		logf.Close()
		return fail(fmt.Errorf("start VM: %w (see %s)", err, c.Console))
	}
	v.logf("running")
	// Notifications queue up without bound until read, so none is lost
	// between Start and here.
	go v.watch(vm.StateChangedNotify())
	return v, nil
}

// machineConfig builds and validates the framework's configuration for c,
// and says which folders it gives the guest.
func machineConfig(c config) (*vzf.VirtualMachineConfiguration, []string, error) {
	opts := []vzf.LinuxBootLoaderOption{vzf.WithCommandLine(c.Cmdline)}
	if c.Initrd != "" {
		opts = append(opts, vzf.WithInitrd(c.Initrd))
	}
	// arm64 wants the uncompressed Image (the framework does not
	// decompress), which is what vmimage ships.
	bl, err := vzf.NewLinuxBootLoader(c.Kernel, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("boot loader: %w", err)
	}

	cpus := uint(c.CPUs)
	if lo, hi := vzf.VirtualMachineConfigurationMinimumAllowedCPUCount(), vzf.VirtualMachineConfigurationMaximumAllowedCPUCount(); cpus < lo || cpus > hi {
		return nil, nil, fmt.Errorf("%d CPUs: this Mac allows %d to %d", c.CPUs, lo, hi)
	}
	mem := uint64(c.MemoryMiB) << 20
	if lo, hi := vzf.VirtualMachineConfigurationMinimumAllowedMemorySize(), vzf.VirtualMachineConfigurationMaximumAllowedMemorySize(); mem < lo || mem > hi {
		return nil, nil, fmt.Errorf("%d MiB of memory: this Mac allows %d to %d MiB", c.MemoryMiB, lo>>20, hi>>20)
	}
	cfg, err := vzf.NewVirtualMachineConfiguration(bl, cpus, mem)
	if err != nil {
		return nil, nil, err
	}

	// The console: one virtio console port, hvc0 in the guest. The file is
	// created first so that a missing one is a clear error here.
	f, err := os.OpenFile(c.Console, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("console: %w", err)
	}
	f.Close()
	att, err := vzf.NewFileSerialPortAttachment(c.Console, true)
	if err != nil {
		return nil, nil, fmt.Errorf("console %s: %w", c.Console, err)
	}
	serial, err := vzf.NewVirtioConsoleDeviceSerialPortConfiguration(att)
	if err != nil {
		return nil, nil, fmt.Errorf("console: %w", err)
	}
	cfg.SetSerialPortsVirtualMachineConfiguration([]*vzf.VirtioConsoleDeviceSerialPortConfiguration{serial})

	// The agent's channel.
	vsock, err := vzf.NewVirtioSocketDeviceConfiguration()
	if err != nil {
		return nil, nil, fmt.Errorf("vsock: %w", err)
	}
	cfg.SetSocketDevicesVirtualMachineConfiguration([]vzf.SocketDeviceConfiguration{vsock})

	// NAT: macOS's vmnet gives the guest an address and DNS by DHCP.
	nat, err := vzf.NewNATNetworkDeviceAttachment()
	if err != nil {
		return nil, nil, fmt.Errorf("network: %w", err)
	}
	netdev, err := vzf.NewVirtioNetworkDeviceConfiguration(nat)
	if err != nil {
		return nil, nil, fmt.Errorf("network: %w", err)
	}
	mac, err := vzf.NewMACAddress(c.MAC)
	if err != nil {
		return nil, nil, fmt.Errorf("network: MAC address %s: %w", c.MAC, err)
	}
	netdev.SetMACAddress(mac)
	cfg.SetNetworkDevicesVirtualMachineConfiguration([]*vzf.VirtioNetworkDeviceConfiguration{netdev})

	if c.DataDisk != "" {
		// Cached: the framework's default (automatic, uncached on local
		// disks) has corrupted ext4 in Linux guests (lima-vm/lima#1957).
		// Full: a guest flush becomes fsync plus F_FULLFSYNC, so what the
		// guest's file system committed survives a host crash or power loss;
		// plain fsync on macOS leaves it in the drive's cache.
		disk, err := vzf.NewDiskImageStorageDeviceAttachmentWithCacheAndSync(c.DataDisk, false,
			vzf.DiskImageCachingModeCached, vzf.DiskImageSynchronizationModeFull)
		if err != nil {
			return nil, nil, fmt.Errorf("data disk %s: %w", c.DataDisk, err)
		}
		blk, err := vzf.NewVirtioBlockDeviceConfiguration(disk)
		if err != nil {
			return nil, nil, fmt.Errorf("data disk: %w", err)
		}
		// Identifiers came with macOS 12.3; before it the guest takes the
		// first virtio disk, which is this one.
		if err := blk.SetBlockDeviceIdentifier(DataDiskSerial); err != nil && !errors.Is(err, vzf.ErrUnsupportedOSVersion) {
			return nil, nil, fmt.Errorf("data disk identifier: %w", err)
		}
		cfg.SetStorageDevicesVirtualMachineConfiguration([]vzf.StorageDeviceConfiguration{blk})
	}

	// Host folders as virtiofs devices, which the framework serves from
	// this process, as this user.
	// Before macOS 12 there is no virtiofs: the agent's channel serves
	// the folders alone.
	var shares []vzf.DirectorySharingDeviceConfiguration
	var folders []string
	for _, f := range c.Folders {
		dev, err := folderDevice(f)
		if errors.Is(err, vzf.ErrUnsupportedOSVersion) {
			shares, folders = nil, nil
			break
		}
		if err != nil {
			// A folder gone or unreadable: the start goes on, and the
			// host process says why the folder is not shared.
			continue
		}
		shares = append(shares, dev)
		folders = append(folders, f.Tag)
	}
	if len(shares) > 0 {
		cfg.SetDirectorySharingDevicesVirtualMachineConfiguration(shares)
	}

	// Entropy, so that the guest's RNG (and with it SSH key exchange) is
	// ready at once.
	rng, err := vzf.NewVirtioEntropyDeviceConfiguration()
	if err != nil {
		return nil, nil, fmt.Errorf("entropy device: %w", err)
	}
	cfg.SetEntropyDevicesVirtualMachineConfiguration([]*vzf.VirtioEntropyDeviceConfiguration{rng})

	// A traditional balloon: the host can reclaim guest memory only by
	// setting a target the guest inflates the balloon to (virtio_balloon,
	// a late module). Virtualization.framework has no free page reporting,
	// so memory the guest frees is not returned by itself, unlike under
	// QEMU (virtio-balloon with free-page-reporting=on).
	balloon, err := vzf.NewVirtioTraditionalMemoryBalloonDeviceConfiguration()
	if err != nil {
		return nil, nil, fmt.Errorf("memory balloon: %w", err)
	}
	cfg.SetMemoryBalloonDevicesVirtualMachineConfiguration([]vzf.MemoryBalloonDeviceConfiguration{balloon})

	ok, err := cfg.Validate()
	if err != nil {
		if uerr := validationError(err.Error(), executable()); uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("invalid VM configuration: %w", err)
	}
	if !ok {
		return nil, nil, errors.New("invalid VM configuration (the framework gave no reason)")
	}
	return cfg, folders, nil
}

// folderDevice is f's virtiofs device.
func folderDevice(f driver.Folder) (*vzf.VirtioFileSystemDeviceConfiguration, error) {
	dir, err := vzf.NewSharedDirectory(f.HostPath, f.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", f.HostPath, err)
	}
	share, err := vzf.NewSingleDirectoryShare(dir)
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", f.HostPath, err)
	}
	dev, err := vzf.NewVirtioFileSystemDeviceConfiguration(f.Tag)
	if err != nil {
		return nil, fmt.Errorf("folder %s: tag %q: %w", f.HostPath, f.Tag, err)
	}
	dev.SetDirectoryShare(share)
	return dev, nil
}

func executable() string {
	exe, err := os.Executable()
	if err != nil {
		return "vmbox"
	}
	return exe
}

// VM is one running Virtualization.framework VM, in this process.
type VM struct {
	name         string
	vm           *vzf.VirtualMachine // referenced for as long as the VM runs: its finalizer releases it
	sock         *vzf.VirtioSocketDevice
	console      string
	consoleStart int64    // console size when the VM started; this boot's output follows
	folders      []string // tags of the virtiofs devices

	logMu sync.Mutex
	log   *os.File // vz.log; closed once the VM has stopped

	done    chan struct{} // closed once the VM has stopped and waitErr is set
	waitErr error

	mu     sync.Mutex
	killed bool
}

var (
	_ driver.VM             = (*VM)(nil)
	_ driver.FolderExporter = (*VM)(nil)
)

// ExportedFolders are the tags of the folders the guest has as virtiofs
// devices: all of Spec.Folders.
func (v *VM) ExportedFolders() []string { return v.folders }

// Pid is 0: the VM runs in this process.
func (*VM) Pid() int { return 0 }

// Accelerator is "vz".
func (*VM) Accelerator() string { return "vz" }

// Wait blocks until the VM has stopped. It returns nil when the guest
// powered off; an error wrapping ErrKilled after Kill; an error quoting
// the panic message when the guest kernel panicked (panic=-1 reboots,
// which the framework reports as a stop); and an error when the framework
// put the VM into its error state. Any number of goroutines may call it.
func (v *VM) Wait() error {
	<-v.done
	return v.waitErr
}

// watch follows the VM's state until it stops.
func (v *VM) watch(states <-chan vzf.VirtualMachineState) {
	for s := range states {
		v.logf("state: %s", s)
		switch s {
		case vzf.VirtualMachineStateStopped:
			v.exited(nil)
			return
		case vzf.VirtualMachineStateError:
			v.exited(errors.New("Virtualization.framework stopped it with an internal error"))
			return
		}
	}
}

// exited records how the VM ended; called once, by watch.
func (v *VM) exited(err error) {
	v.mu.Lock()
	killed := v.killed
	v.mu.Unlock()
	switch {
	case killed:
		v.waitErr = fmt.Errorf("VM %s: %w", v.name, ErrKilled)
	case err != nil:
		v.waitErr = fmt.Errorf("VM %s: %w (see %s)", v.name, err, v.console)
	default:
		if p := driver.PanicLine(v.console, v.consoleStart); p != "" {
			v.waitErr = fmt.Errorf("guest kernel panicked: %s (console: %s)", p, v.console)
		}
	}
	v.logf("stopped: %v", v.waitErr)
	v.logMu.Lock()
	v.log.Close()
	v.log = nil
	v.logMu.Unlock()
	close(v.done)
}

// logf appends one timestamped line to vz.log.
func (v *VM) logf(format string, args ...any) {
	v.logMu.Lock()
	defer v.logMu.Unlock()
	if v.log == nil {
		return
	}
	fmt.Fprintf(v.log, "%s %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// Kill stops the VM at once, without asking the guest (the host process
// asks the agent to power off for a graceful stop). When the framework
// cannot force a stop in the VM's current state, it asks the guest
// instead. Killing a VM that has already stopped is not an error.
func (v *VM) Kill() error {
	if v.stopped() {
		return nil
	}
	v.mu.Lock()
	v.killed = true
	v.mu.Unlock()
	switch {
	case v.vm.CanStop():
		v.logf("kill: stopping")
		if err := v.vm.Stop(); err != nil && !v.stopped() {
			return fmt.Errorf("stop VM %s: %w", v.name, err)
		}
	case v.vm.CanRequestStop():
		v.logf("kill: cannot stop in state %s; asking the guest", v.vm.State())
		if _, err := v.vm.RequestStop(); err != nil && !v.stopped() {
			return fmt.Errorf("request stop of VM %s: %w", v.name, err)
		}
	case !v.stopped():
		return fmt.Errorf("VM %s cannot be stopped in state %s", v.name, v.vm.State())
	}
	return nil
}

// RequestStop asks the guest to power off (the framework's RequestStop:
// a power-button event) and returns without waiting for it.
func (v *VM) RequestStop(ctx context.Context) error {
	return v.change("request stop", "be asked to stop", "request stop of", v.vm.CanRequestStop, func() error {
		_, err := v.vm.RequestStop()
		return err
	})
}

// ForceStop ends the VM without the guest (the framework's Stop). Unlike
// Kill, Wait then returns nil.
func (v *VM) ForceStop(ctx context.Context) error {
	return v.change("force stop", "be stopped", "stop", v.vm.CanStop, v.vm.Stop)
}

// Pause implements driver.Pauser with the framework's Pause.
func (v *VM) Pause(ctx context.Context) error {
	return v.change("pause", "be paused", "pause", v.vm.CanPause, v.vm.Pause)
}

// Resume implements driver.Pauser with the framework's Resume.
func (v *VM) Resume(ctx context.Context) error {
	return v.change("resume", "be resumed", "resume", v.vm.CanResume, v.vm.Resume)
}

// change makes one of the framework's state changes: none once the VM has
// stopped, an error naming the state when allowed says it cannot be made
// now, and the framework's error unless the VM stopped meanwhile. logged
// goes to the log, refused completes "VM x cannot ...", failed prefixes
// "VM x" in the framework's error.
func (v *VM) change(logged, refused, failed string, allowed func() bool, do func() error) error {
	if v.stopped() {
		return nil
	}
	if !allowed() {
		return fmt.Errorf("VM %s cannot %s in state %s", v.name, refused, v.vm.State())
	}
	v.logf("%s", logged)
	if err := do(); err != nil && !v.stopped() {
		return fmt.Errorf("%s VM %s: %w", failed, v.name, err)
	}
	return nil
}

func (v *VM) stopped() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// exitErr returns an error saying the VM stopped (and why) if it has.
func (v *VM) exitErr(when string) error {
	if !v.stopped() {
		return nil
	}
	if v.waitErr != nil {
		return fmt.Errorf("VM %s stopped %s: %w", v.name, when, v.waitErr)
	}
	return fmt.Errorf("VM %s shut down %s", v.name, when)
}

// connectWait bounds one vsock connection attempt. The framework answers
// at once when the guest refuses (nothing listens yet); the bound only
// keeps a lost answer from stalling the boot: the attempt is abandoned
// (its connection, if one comes after all, is closed) and another made.
const connectWait = time.Second

// DialAgent connects to the agent's vsock port (api.AgentPort), retrying
// (driver.DialRetry) until the guest listens. ctx bounds the wait: pass
// the boot timeout. Each connection is a plain SSH connection, and any
// number may be open. If the VM stops meanwhile, the error says why.
func (v *VM) DialAgent(ctx context.Context) (net.Conn, error) {
	c, err := driver.DialRetry(ctx, v.connect, v.done)
	if errors.Is(err, driver.ErrVMExited) {
		return nil, v.exitErr("before the agent listened on vsock")
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the agent on vsock port %d: %w", api.AgentPort, err)
	}
	return c, nil
}

// DialForward connects to the agent's forwarding gateway on vsock
// (api.ForwardPort).
func (v *VM) DialForward(ctx context.Context) (net.Conn, error) {
	c, err := v.connectPort(ctx, api.ForwardPort)
	if err != nil {
		return nil, fmt.Errorf("connect to the forwarding gateway on vsock port %d: %w", api.ForwardPort, err)
	}
	return c, nil
}

// connect makes one connection attempt to the agent.
func (v *VM) connect(ctx context.Context) (net.Conn, error) {
	return v.connectPort(ctx, api.AgentPort)
}

// connectPort makes one connection attempt to a vsock port of the guest.
func (v *VM) connectPort(ctx context.Context, port uint32) (net.Conn, error) {
	type result struct {
		c   *vzf.VirtioSocketConnection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := v.sock.Connect(port)
		ch <- result{c, err}
	}()
	abandon := func(err error) (net.Conn, error) {
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, err
	}
	t := time.NewTimer(connectWait)
	defer t.Stop()
	select {
	case r := <-ch:
		return toConn(r.c, r.err)
	case <-ctx.Done():
		return abandon(ctx.Err())
	case <-v.done:
		return abandon(errors.New("the VM stopped"))
	case <-t.C:
		return abandon(fmt.Errorf("no answer from the framework in %s", connectWait))
	}
}
