package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/driver"
)

// Accelerator names, as QEMU's -accel spells them.
const (
	AccelKVM  = "kvm"
	AccelHVF  = "hvf"
	AccelWHPX = "whpx"
	AccelTCG  = "tcg"
)

// Files the driver keeps in the instance directory. The QMP socket is
// given to QEMU relative to the instance directory (QEMU runs there) so that
// a long instance path never exceeds the unix socket path limit.
const (
	QMPSocketName = "qmp.sock"
	PidfileName   = "qemu.pid"
	LogName       = "qemu.log"
	InitrdName    = "initrd.combined"
	ConsoleName   = "console.log" // used when Spec.Console is empty
)

// DataDiskSerial is the virtio-blk serial of the data disk, so that the
// guest can find it by serial (vmconfig.DataDisk.Serial) rather than by
// probe order.
const DataDiskSerial = "vmbox-data"

// User-mode networking (slirp) addresses. They are QEMU's defaults, spelled
// out on QEMU's command line and in the guest's static configuration
// (GuestNetwork) so that the two cannot silently disagree.
const (
	SlirpNet          = "10.0.2.0/24"
	SlirpGuestAddress = "10.0.2.15/24"
	SlirpGateway      = "10.0.2.2" // also the host, as seen from the guest
	SlirpDNS          = "10.0.2.3"
)

// slirpNetdev is the id of the user-networking backend, which hostfwd
// commands name.
const slirpNetdev = "net0"

// slirpGuestIP is SlirpGuestAddress without its prefix length.
func slirpGuestIP() string {
	ip, _, _ := strings.Cut(SlirpGuestAddress, "/")
	return ip
}

// tcgX86CPU is the CPU model for x86 guests under TCG. qemu64 plus the SSE4
// family was faster to boot than -cpu max; RDRAND is essential because
// without it the guest's RNG is not ready for over a second, which blocks
// crypto/rand and so SSH key exchange (measured: RNG ready at 1.36 s
// without RDRAND, 0.058 s with it). ARAT (an APIC timer that keeps running
// in deep idle states) lets the idle guest stop its tick (NOHZ idle)
// instead of taking 250 timer interrupts a second; AES-NI and PCLMULQDQ
// make Go's AES-GCM, and so the agent's SSH, much faster.
const tcgX86CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+rdrand,+arat,+aes,+pclmulqdq"

// tcgARMCPU is the CPU model for arm64 guests under TCG: -cpu max is about
// three times slower because of pointer-authentication emulation.
const tcgARMCPU = "cortex-a72"

// guestHZ is CONFIG_HZ of the Debian kernels vmbox boots; lpj is in TSC
// cycles per jiffy.
const guestHZ = 250

// KernelParams is what the kernel command line depends on.
type KernelParams struct {
	Arch  string // guest GOARCH: amd64 or arm64
	Accel string // accelerator QEMU is asked to use
	CPUs  int
	// TSCKHz is the frequency of the guest's TSC in kHz as TCG emulates it
	// (the host's tick counter); 0 leaves the timing words out.
	TSCKHz int64
	Extra  []string // Spec.Cmdline, appended last so that it can override
}

// KernelCmdline returns the kernel command line words for p.
//
// On x86 the microvm machine has no calibrated clock source under TCG: the
// kernel hangs at "tsc: Unable to calibrate against PIT" unless it is told
// the TSC frequency and that the TSC is reliable. Under WHPX the
// words are given too because QEMU may fall back to TCG without saying so;
// the guest TSC then runs at the host's rate, so the values are right either
// way. KVM and HVF give the guest a calibrated clock (kvmclock, or the
// hardware TSC) and need none of them.
func KernelCmdline(p KernelParams) []string {
	var w []string
	switch p.Arch {
	case "arm64":
		w = append(w, "console=ttyAMA0")
	default:
		w = append(w, "console=ttyS0")
	}
	w = append(w, "quiet", "panic=-1")
	if p.Arch == "amd64" && (p.Accel == AccelTCG || p.Accel == AccelWHPX) && p.TSCKHz > 0 {
		lpj := p.TSCKHz * 1000 / guestHZ
		w = append(w, "tsc=reliable", "lpj="+strconv.FormatInt(lpj, 10), "no_timer_check")
	}
	w = append(w, driver.CommonCmdline()...)
	if p.Arch == "amd64" {
		w = append(w, "8250.nr_uarts=1")
		if (p.Accel == AccelTCG || p.Accel == AccelWHPX) && p.TSCKHz > 0 {
			w = append(w, "tsc_early_khz="+strconv.FormatInt(p.TSCKHz, 10))
		}
		if p.Accel == AccelTCG {
			w = append(w, guestGODEBUGUnderTCG)
		}
	}
	// Under TCG a second vCPU slows boot down on a small host (2.8 s instead
	// of 2.0 s at load 6):
	// the kernel brings up one, and the guest onlines the others once it is
	// ready (vmconfig.Config.CPUs).
	if p.Accel == AccelTCG && p.CPUs > 1 {
		w = append(w, "maxcpus=1")
	}
	return append(w, p.Extra...)
}

// guestGODEBUGUnderTCG reaches the guest's init (and, inherited, the agent
// and the containers' inits: the same Go binary) as an environment
// variable, since the kernel passes such words on. It turns off Go's use of
// SSE4.2, for one reason: a package the agent links (klauspost/compress's
// snappy reference code, through zstd) builds a CRC-32C table at start-up,
// which with SSE4.2 takes about 190,000 CRC32 instructions, and TCG
// emulates each with a helper call: 11-14 ms of every start of that
// binary, against 0.2-0.5 ms for the table-driven code. Nothing the agent
// does later depends on SSE4.2's speed. Spec.Cmdline can replace it
// (a later GODEBUG word wins).
const guestGODEBUGUnderTCG = "GODEBUG=cpu.sse42=off"

// Config is everything the QEMU argv depends on. Paths are used as given:
// QEMU runs with the instance directory as its working directory.
type Config struct {
	Name  string // instance name
	Arch  string // guest GOARCH: amd64 or arm64
	Accel string
	// Emulated says why Accel is TCG where a hardware accelerator was
	// wanted ("" otherwise); it is for the user and changes no argument.
	Emulated  string
	CPUs      int
	MemoryMiB int
	Kernel    string
	Initrd    string // one file; "" for none
	Cmdline   []string
	DataDisk  string // "" for none
	// DiskCache is the -drive cache mode of the data disk; "" means
	// writeback (see DefaultDiskCache).
	DiskCache string
	Console   string
	// AgentPort is the host loopback port that user networking forwards
	// to the agent's port (api.AgentPort) on the guest's address.
	AgentPort int
	// ForwardPort is the host loopback port forwarded to the agent's
	// forwarding gateway (api.ForwardPort).
	ForwardPort int
	// QMPSocket is the QMP control socket QEMU listens on.
	QMPSocket string
	Pidfile   string
	// Machine overrides the machine type and its properties ("" = default).
	Machine string
	// Folders are the virtiofs devices, each served by a virtiofsd
	// listening on its socket.
	Folders []FolderDevice
	// NoArchCapabilities hides IA32_ARCH_CAPABILITIES from an x86 guest
	// of -cpu host. Some nested KVM hosts advertise the MSR but refuse
	// QEMU's write of it, and QEMU aborts before the guest runs (see
	// archCapabilitiesFailure).
	NoArchCapabilities bool
}

// FolderDevice is one virtiofs device: a vhost-user-fs device whose
// backend, virtiofsd, listens on Socket (relative to the instance
// directory, like the QMP socket).
type FolderDevice struct {
	Tag    string
	Socket string
}

// DefaultDiskCache is the data disk's cache mode. writeback goes through the
// host page cache (so a killed QEMU loses nothing the guest wrote) and turns
// each guest flush into a host fdatasync, so what the guest's file system
// has committed survives a host crash too. cache=unsafe, which the boot
// measurements used, ignores the guest's flushes: a host crash or power
// loss could then leave the data disk's ext4 journal inconsistent.
const DefaultDiskCache = "writeback"

// Args returns QEMU's argv (without the program name) for c.
func Args(c Config) []string {
	x86 := c.Arch == "amd64"
	// microvm on x86 has virtio-mmio transports only; arm64's virt machine
	// has PCIe, whose MSI-X interrupts scale better than virtio-mmio's single
	// line once the guest has several CPUs.
	dev := func(kind string) string {
		if x86 {
			return "virtio-" + kind + "-device"
		}
		return "virtio-" + kind + "-pci"
	}

	machine := c.Machine
	cpu := ""
	switch {
	case x86:
		if machine == "" {
			// No PIT: its timer kept QEMU's main loop waking ~38 times a
			// second in an idle VM, and the kernel does not need it to
			// calibrate the TSC, whose frequency it is given under TCG
			// (tsc_early_khz) and learns from the hypervisor otherwise.
			// rtc gives the guest its wall clock at boot (without it the
			// guest starts in 1970 until something sets the time).
			machine = "microvm,pit=off,pic=on,rtc=on"
		}
		cpu = tcgX86CPU
		if c.Accel != AccelTCG && c.Accel != AccelWHPX {
			cpu = "host"
			if c.NoArchCapabilities {
				cpu += ",-arch-capabilities"
			}
		}
		if c.Accel == AccelWHPX {
			// -cpu host is not available under TCG, which WHPX may fall
			// back to.
			cpu = tcgX86CPU
		}
	default:
		if machine == "" {
			machine = "virt"
			if c.Accel != AccelTCG {
				machine = "virt,highmem=on"
			}
			if c.CPUs > 8 {
				// GICv2 addresses at most 8 CPUs.
				machine += ",gic-version=3"
			}
		}
		cpu = tcgARMCPU
		if c.Accel != AccelTCG {
			cpu = "host"
		}
	}

	if len(c.Folders) > 0 {
		// vhost-user: virtiofsd reads and writes the guest's memory
		// itself, so the memory must be a shared mapping it can map.
		machine += ",memory-backend=" + folderMemory
	}
	a := []string{
		"-name", Escape("vmbox-" + c.Name),
		"-machine", machine,
	}
	a = append(a, accelArgs(c.Accel)...)
	a = append(a,
		"-cpu", cpu,
		"-m", strconv.Itoa(c.MemoryMiB),
		"-smp", strconv.Itoa(c.CPUs),
		"-nodefaults", "-no-reboot",
		"-display", "none",
		"-monitor", "none",
		// QMP: the driver's way to ask the guest to power off, to end
		// QEMU, and to see that QEMU has finished setting up.
		"-qmp", "unix:"+Escape(c.QMPSocket)+",server=on,wait=off",
		"-pidfile", c.Pidfile,
		// append=on: the console of an earlier boot (a crash, a panic) is
		// still there to read after the next start.
		"-chardev", "file,id=console,path="+Escape(c.Console)+",append=on",
		"-serial", "chardev:console",
		"-kernel", c.Kernel,
	)
	if c.Initrd != "" {
		a = append(a, "-initrd", c.Initrd)
	}
	a = append(a, "-append", strings.Join(c.Cmdline, " "))
	a = append(a,
		// The agent is reached through user networking: the host's
		// loopback port is forwarded to the agent's port on the guest's
		// static address, and only loopback can reach it.
		"-netdev", fmt.Sprintf("user,id=%s,net=%s,host=%s,dns=%s,hostfwd=tcp:127.0.0.1:%d-%s:%d,hostfwd=tcp:127.0.0.1:%d-%s:%d",
			slirpNetdev, SlirpNet, SlirpGateway, SlirpDNS, c.AgentPort, slirpGuestIP(), api.AgentPort, c.ForwardPort, slirpGuestIP(), api.ForwardPort),
		"-device", dev("net")+",netdev="+slirpNetdev,
		// The builtin backend reads the host's getrandom/BCryptGenRandom
		// on every host OS.
		"-device", dev("rng"),
		// Free page reporting: the guest tells QEMU which pages it has
		// freed, and QEMU discards them, so memory the guest used once and
		// freed goes back to the host without the host having to inflate
		// the balloon.
		"-device", dev("balloon")+",free-page-reporting=on",
	)
	if c.DataDisk != "" {
		cache := c.DiskCache
		if cache == "" {
			cache = DefaultDiskCache
		}
		// discard/detect-zeroes=unmap keep the sparse image sparse when the
		// guest trims or writes zeroes. QEMU's image locking (on by
		// default) refuses a second VM on the same disk.
		a = append(a,
			"-drive", "file="+Escape(c.DataDisk)+",format=raw,if=none,id=data,cache="+cache+",discard=unmap,detect-zeroes=unmap",
			"-device", dev("blk")+",drive=data,serial="+DataDiskSerial,
		)
	}
	if len(c.Folders) > 0 {
		a = append(a, "-object", fmt.Sprintf("memory-backend-memfd,id=%s,size=%dM,share=on", folderMemory, c.MemoryMiB))
		if x86 {
			// virtio-mmio devices are legacy (virtio 0.9) unless told
			// otherwise, and virtiofsd serves virtio 1.0 devices only.
			a = append(a, "-global", "virtio-mmio.force-legacy=false")
		}
		for i, f := range c.Folders {
			id := fmt.Sprintf("folder%d", i)
			a = append(a,
				"-chardev", "socket,id="+id+",path="+Escape(f.Socket),
				"-device", fmt.Sprintf("vhost-user-%s,chardev=%s,tag=%s", strings.TrimPrefix(dev("fs"), "virtio-"), id, f.Tag),
			)
		}
	}
	return a
}

// folderMemory is the id of the shared memory backend virtiofs needs.
const folderMemory = "vmmem"

// accelArgs selects the accelerator. WHPX is asked for with a TCG fallback
// because it is often unavailable (Hyper-V platform feature off) on
// machines whose QEMU supports it.
func accelArgs(accel string) []string {
	if accel == AccelWHPX {
		return []string{"-accel", "whpx", "-accel", "tcg"}
	}
	return []string{"-accel", accel}
}

// Escape doubles commas, which QEMU's option syntax uses as separators, so
// that a path containing one stays one value.
func Escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
