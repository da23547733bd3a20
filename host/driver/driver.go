// Package driver defines how the per-instance host process boots and stops a
// virtual machine, independent of the hypervisor. Implementations live in
// subpackages: qemu (every host OS) and vz (macOS Virtualization.framework).
package driver

import (
	"context"
	"net"
	"net/netip"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// Spec is everything a driver needs to boot one instance's VM.
type Spec struct {
	Name      string // instance name, used in the guest's hostname
	Dir       string // instance directory; drivers keep their sockets and pid files here
	Arch      string // guest architecture, GOARCH spelling: amd64 or arm64
	CPUs      int
	MemoryMiB int
	Kernel    string   // path of the bootable kernel (PVH vmlinux on x86, Image on arm64)
	Initrds   []string // initramfs images, concatenated in order (base image, then per-instance config)
	Cmdline   []string // extra kernel command line words, added to the driver's own
	DataDisk  string   // raw disk image attached as the guest's data disk
	Console   string   // file that receives the guest console
	// Folders are host folders the driver may give the guest as virtiofs
	// devices, each under its Tag; a driver that cannot leaves some or all
	// of them out (FolderExporter says which it gave).
	Folders []Folder
}

// Folder is a host folder offered to the guest as a virtiofs device.
type Folder struct {
	Tag      string // the device's tag, which the guest mounts by (at most 36 bytes)
	HostPath string
	ReadOnly bool
}

// FolderExporter is a VM that gave the guest some of Spec.Folders.
type FolderExporter interface {
	// ExportedFolders are the tags of the folders the guest can mount.
	ExportedFolders() []string
}

// Driver boots VMs of one kind.
type Driver interface {
	// Name is the driver's name as users select it ("qemu", "vz").
	Name() string
	// Available reports why the driver cannot run on this host, or nil.
	Available() error
	// GuestModules lists the kernel modules a guest of arch must load
	// before its agent can answer: the machine's virtio transport
	// (virtio-mmio or virtio-pci), the agent's channel and network, and
	// entropy where the CPU has no source of its own. (The guest loads
	// its disk's driver itself when it mounts the data disk.)
	// Dependencies are implied. The host passes them in
	// the guest's instance configuration (vmconfig.Config.Modules),
	// which it writes before Start.
	GuestModules(arch string) []string
	// GuestLateModules lists the kernel modules a guest of arch loads once
	// the host has first reached the agent (vmconfig.Config.LateModules):
	// devices that the first request does not need, such as the power
	// button and the memory balloon.
	GuestLateModules(arch string) []string
	// GuestAgent is where the guest agent must serve for DialAgent to
	// reach it (vmconfig.Config.Agent).
	GuestAgent() vmconfig.Agent
	// GuestNetwork is how the guest configures its interface on this
	// driver's network: a static slirp address under QEMU, DHCP under vz NAT.
	GuestNetwork() vmconfig.Network
	// Start boots the VM and returns once the hypervisor is running (not when
	// the guest is ready). Cancelling ctx after Start has returned does not
	// stop the VM.
	Start(ctx context.Context, spec Spec) (VM, error)
}

// VM is one running virtual machine.
type VM interface {
	// DialAgent opens a byte stream to the guest agent's SSH service,
	// retrying until the agent answers, ctx ends, or the VM exits (the
	// error then says why). Any number of streams may be open.
	DialAgent(ctx context.Context) (net.Conn, error)
	// DialForward opens a byte stream to the agent's forwarding gateway
	// (api.ForwardPort, on the agent's transport), which carries one
	// published port's connection into the VM. It makes one attempt: it
	// is used once the agent is up.
	DialForward(ctx context.Context) (net.Conn, error)
	// RequestStop asks the guest OS, through the hypervisor, to power off
	// (a power-button press: ACPI or GPIO, as the machine has) and returns
	// without waiting for it; Wait tells when it has. It needs no agent,
	// so it works while the agent is stuck or unreachable. Asking a VM
	// that has already exited is not an error.
	RequestStop(ctx context.Context) error
	// ForceStop ends the VM through the hypervisor, without the guest
	// (like pulling the power cord: what the guest has not flushed is
	// lost), and returns once the hypervisor has taken the request.
	// Stopping a VM that has already exited is not an error.
	ForceStop(ctx context.Context) error
	// Wait blocks until the VM has exited and returns why.
	Wait() error
	// Kill stops the VM at once, without asking the guest.
	Kill() error
	// Pid is the hypervisor's process ID, or 0 when the VM runs in this process.
	Pid() int
	// Accelerator names what runs the guest's CPUs ("kvm", "hvf", "whpx", "tcg", "vz").
	Accelerator() string
}

// RunStateReporter is a VM whose hypervisor can say whether it runs the
// guest: "running", or the state it holds the guest in instead, as QEMU's
// run states name them ("paused", "internal-error", "io-error",
// "guest-panicked", ...). A silent agent in a running guest is hung; in a
// guest that is not running, the hypervisor is why.
type RunStateReporter interface {
	RunState(ctx context.Context) (string, error)
}

// Pauser is a VM whose hypervisor can stop running the guest, keeping all
// of its state, and run it again: a paused guest costs the host no CPU.
// The guest's clocks stop while it is paused; its wall clock needs
// setting afterwards.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

// EmulationExplainer is a VM that can say why its CPU is emulated where
// the host has a hardware accelerator the user may expect (QEMU's TCG
// instead of KVM or HVF): "" when it is not, or when emulation was asked
// for.
type EmulationExplainer interface {
	EmulatedBecause() string
}

// LoopbackGateway is a VM whose agent's forwarding gateway
// (api.ForwardPort) listens on a host loopback TCP address (QEMU's user
// networking forwards it there): any process of the user that holds the
// gateway's token can then open streams through it itself, as the CLI
// does for an operation's stdin and stdout.
type LoopbackGateway interface {
	// GatewayAddr is the gateway's host address, "127.0.0.1:port".
	GatewayAddr() string
}

// GuestForwarder is a VM whose hypervisor can forward a host loopback port
// straight to an address the guest routes (QEMU's user networking): a
// published TCP port's connections then reach the container through the
// guest's kernel alone, instead of being received and sent again by the
// forwarding gateway, which halves what the guest's CPUs do per byte.
type GuestForwarder interface {
	// ForwardToGuest makes a new host loopback port whose TCP connections
	// reach target inside the guest, and returns its address.
	ForwardToGuest(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error)
	// RemoveForward ends a forward ForwardToGuest made.
	RemoveForward(ctx context.Context, host netip.AddrPort) error
}
