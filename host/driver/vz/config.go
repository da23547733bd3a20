package vz

// This file is portable on purpose: what the macOS driver decides without
// calling Virtualization.framework (command line, paths, MAC address,
// messages) is tested on every host.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/driver/initrd"
)

// Files the driver keeps in the instance directory.
const (
	// LogName receives the VM's state changes and errors: the framework
	// runs in this process, so there is no hypervisor output to keep.
	LogName = "vz.log"
	// InitrdName is where several initrds are concatenated; the qemu
	// driver uses the same name, so switching drivers reuses the file.
	InitrdName = "initrd.combined"
	// ConsoleName is used when Spec.Console is empty.
	ConsoleName = "console.log"
)

// DataDiskSerial is the virtio-blk identifier of the data disk (macOS 12.3
// and later), as under the qemu driver, so that the guest can find the
// disk by serial (vmconfig.DataDisk.Serial).
const DataDiskSerial = "vmbox-data"

// MinMemoryMiB is the least memory the driver gives a guest (Spec.Resolve
// checks it).
const MinMemoryMiB = driver.MinMemoryMiB

// MinMacOSMajor is the oldest macOS the driver runs on: forced stop,
// disk caching and synchronisation modes and the virtio console came
// with macOS 12.
const MinMacOSMajor = 12

// GuestNetwork is the guest network configuration a VM of this driver
// needs: the NAT attachment hands out addresses (and a DNS server) by DHCP
// from a subnet macOS chooses, so nothing can be configured statically.
// The host process writes it into vmconfig.Config.Network.
func GuestNetwork() vmconfig.Network {
	return vmconfig.Network{Mode: vmconfig.NetworkDHCP}
}

// guestModules are the modules for the devices Start gives a guest: all
// of them are virtio-pci under Virtualization.framework, on both
// architectures; hvc0 (the console) is virtio_console; the agent is
// reached over vsock.
func guestModules() []string {
	return []string{"virtio_pci", "virtio_console", "virtio_blk", "virtio_net", "virtio_rng", "vmw_vsock_virtio_transport"}
}

// GuestAgent is vsock on api.AgentPort, where DialAgent connects.
func GuestAgent() vmconfig.Agent {
	return vmconfig.Agent{Transport: vmconfig.AgentVsock, Port: api.AgentPort}
}

// guestLateModules are loaded once the host has reached the agent: the
// power button RequestStop presses, as Linux finds it on the
// architecture's platform (ACPI on x86, gpio-keys on the PL061 GPIO on
// arm64), and evdev, through which the guest's init reads it. Which of
// them the framework's platform offers has not been checked on a Mac;
// the guest skips any it lacks. Then the memory balloon's driver.
func guestLateModules(arch string) []string {
	if arch == "arm64" {
		return []string{"gpio_pl061", "gpio_keys", "evdev", "virtio_balloon"}
	}
	return []string{"button", "evdev", "virtio_balloon"}
}

// KernelCmdline returns the kernel command line words for a guest: the
// console on the virtio console (hvc0), then the words every driver gives
// (driver.CommonCmdline: less boot work, less idle work), then extra, last
// so that it can override.
//
// None of the TCG timing words apply: the guest runs on the host's CPU
// with its architectural timer (arm64) or a calibrated TSC (x86), and it
// boots every CPU at once (no maxcpus=1), since no emulation makes a
// second CPU costly.
func KernelCmdline(extra []string) []string {
	w := append([]string{"console=hvc0", "quiet", "panic=-1"}, driver.CommonCmdline()...)
	return append(w, extra...)
}

// MACAddress is the guest's MAC address for the instance in dir: derived
// from the directory so that it stays the same across boots (macOS's DHCP
// server then keeps giving the instance the same address instead of a new
// lease per boot), locally administered and unicast.
func MACAddress(dir string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("vmbox-mac\x00" + dir))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}

// config is a Spec checked and resolved for the framework.
type config struct {
	Name      string
	Arch      string
	CPUs      int
	MemoryMiB int
	Dir       string // absolute
	Kernel    string // absolute
	Initrd    string // one file, absolute; "" for none
	Cmdline   string
	DataDisk  string // absolute; "" for none
	Console   string // absolute
	MAC       net.HardwareAddr
	Folders   []driver.Folder
}

// resolve checks spec for a host of hostArch, makes its paths absolute and
// concatenates its initrds into one file (the framework takes one).
func resolve(ctx context.Context, spec driver.Spec, hostArch string) (config, error) {
	fail := func(err error) (config, error) {
		return config{}, fmt.Errorf("VM %s: %w", spec.Name, err)
	}
	if spec.Arch == "" {
		spec.Arch = hostArch
	}
	if err := checkArch(spec.Arch, hostArch); err != nil {
		return fail(err)
	}
	// Assigned only on success: fail names the VM from spec.
	resolved, err := spec.Resolve(ConsoleName)
	if err != nil {
		return fail(err)
	}
	spec = resolved
	rd, err := initrd.Prepare(ctx, filepath.Join(spec.Dir, InitrdName), spec.Initrds)
	if err != nil {
		return fail(err)
	}
	return config{
		Name:      spec.Name,
		Arch:      spec.Arch,
		CPUs:      spec.CPUs,
		MemoryMiB: spec.MemoryMiB,
		Dir:       spec.Dir,
		Kernel:    spec.Kernel,
		Initrd:    rd,
		Cmdline:   strings.Join(KernelCmdline(spec.Cmdline), " "),
		DataDisk:  spec.DataDisk,
		Console:   spec.Console,
		MAC:       MACAddress(spec.Dir),
		Folders:   spec.Folders,
	}, nil
}

// checkArch refuses guests of another architecture than the host's:
// Virtualization.framework virtualizes, it does not emulate.
func checkArch(guest, host string) error {
	switch guest {
	case "amd64", "arm64":
	default:
		return fmt.Errorf("guest architecture %q is not supported (want amd64 or arm64)", guest)
	}
	if guest != host {
		return fmt.Errorf("the vz driver runs only %s guests on this Mac, not %s: use --arch %s, or --driver qemu to emulate %s", host, guest, host, guest)
	}
	return nil
}

// parseMacOSVersion parses kern.osproductversion ("14.5", "15.0.1", "26").
func parseMacOSVersion(s string) (major, minor int, err error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return 0, 0, fmt.Errorf("macOS version %q: not major.minor[.patch]", s)
	}
	nums := make([]int, 2)
	for i, p := range parts[:min(len(parts), 2)] {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("macOS version %q: not major.minor[.patch]", s)
		}
		nums[i] = n
	}
	return nums[0], nums[1], nil
}

// checkMacOS says why macOS version s is too old for the driver, or nil.
func checkMacOS(s string) error {
	major, _, err := parseMacOSVersion(s)
	if err != nil {
		return err
	}
	if major < MinMacOSMajor {
		return fmt.Errorf("the vz driver needs macOS %d or later (this is %s); use --driver qemu", MinMacOSMajor, strings.TrimSpace(s))
	}
	return nil
}

// validationError turns the framework's complaint about a configuration
// that is valid in itself into what the user must do, or returns nil when
// it is about the probe configuration rather than the host (Start
// validates the real one). The framework reports a missing entitlement and
// a host without virtualization (a Mac that is itself a VM) this way.
func validationError(msg, exe string) error {
	switch {
	case strings.Contains(msg, "com.apple.security.virtualization"), strings.Contains(msg, "entitlement"):
		return fmt.Errorf("%s lacks the com.apple.security.virtualization entitlement that Virtualization.framework requires: sign it (make sign-darwin, or codesign --force --entitlements <plist granting it> -s - %s; see docs/macos.md), or use --driver qemu", exe, exe)
	case strings.Contains(msg, "not available on this hardware"), strings.Contains(msg, "not supported on this hardware"):
		return errors.New("Virtualization.framework is not available on this Mac (is it itself a virtual machine?); use --driver qemu")
	}
	return nil
}

// toConn returns c as a net.Conn, or an untyped nil with an error: a nil
// *T stored in a net.Conn would be a non-nil interface, which callers would
// take for a connection.
func toConn[T interface {
	comparable
	net.Conn
}](c T, err error) (net.Conn, error) {
	var zero T
	if err != nil {
		if c != zero {
			c.Close()
		}
		return nil, err
	}
	if c == zero {
		return nil, errors.New("no connection and no error")
	}
	return c, nil
}

// fileSize is the size of the file at path, or 0.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
