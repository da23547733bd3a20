package vmimage

import (
	"debug/elf"
	"fmt"
)

// archInfo is what the build needs to know about one guest architecture.
type archInfo struct {
	name       string      // GOARCH and Debian architecture (they agree for amd64 and arm64)
	machine    elf.Machine // e_machine of its executables
	multiarch  string      // Debian multiarch tuple, the library directory name
	kernelMeta string      // metapackage that selects the current kernel
}

var arches = map[string]archInfo{
	"amd64": {name: "amd64", machine: elf.EM_X86_64, multiarch: "x86_64-linux-gnu", kernelMeta: "linux-image-cloud-amd64"},
	"arm64": {name: "arm64", machine: elf.EM_AARCH64, multiarch: "aarch64-linux-gnu", kernelMeta: "linux-image-cloud-arm64"},
}

func lookupArch(name string) (archInfo, error) {
	a, ok := arches[name]
	if !ok {
		return archInfo{}, fmt.Errorf("unsupported architecture %q (want amd64 or arm64)", name)
	}
	return a, nil
}

// libDirs are the directories the dynamic loader searches by default
// (glibc's built-in system directories on Debian), in its order.
func (a archInfo) libDirs() []string {
	return []string{"/lib/" + a.multiarch, "/usr/lib/" + a.multiarch, "/lib", "/usr/lib"}
}

// basePackages are pinned for every architecture besides the kernel:
// busybox for a shell and tools, e2fsprogs's mke2fs (which can make ext4,
// unlike busybox's) with the libraries it links, and the CA bundle.
// The mke2fs libraries are listed by name so the lock stays explicit; the
// build checks that they satisfy mke2fs's DT_NEEDED entries and says which
// library is missing if a new e2fsprogs ever needs another.
var basePackages = []string{
	"busybox-static",
	"ca-certificates",
	"e2fsprogs",
	"libblkid1",
	"libc6",
	"libcom-err2",
	"libext2fs2",
	"libuuid1",
}

// wantedModules are the kernel modules the guest may load, by module name.
// Those a kernel builds in, or lacks, are skipped and recorded in the
// manifest; dependencies are added automatically.
var wantedModules = []string{
	// Devices.
	"virtio_pci", "virtio_mmio", "virtio_console", "virtio_net", "virtio_blk", "virtio_rng",
	// Root filesystem and file sharing.
	"overlay", "ext4", "fuse", "virtiofs", "9p", "9pnet", "9pnet_virtio",
	// vsock (the agent transport under vz).
	"vsock", "vmw_vsock_virtio_transport", "vmw_vsock_virtio_transport_common",
	// The power button, so that the hypervisor can ask the guest to power
	// off: ACPI's on x86 (microvm), gpio-keys on the PL061 GPIO on arm64
	// (virt without ACPI); evdev exposes it to PID 1 as KEY_POWER.
	"button", "gpio_pl061", "gpio_keys", "evdev",
	// Free page reporting hands memory the guest frees back to the host.
	"virtio_balloon",
	// Container networking: veth pairs on a bridge, NAT to the VM's uplink
	// through nftables or iptables (legacy and nft-backed xt matches).
	"veth", "bridge", "br_netfilter",
	"nf_conntrack", "nf_nat", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_compat",
	"x_tables", "ip_tables", "iptable_nat", "iptable_filter", "xt_MASQUERADE", "xt_conntrack", "xt_addrtype",
}
