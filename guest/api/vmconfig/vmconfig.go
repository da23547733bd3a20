package vmconfig

// This file is portable on purpose: the host imports Config to write
// the per-instance configuration into the guest's initramfs. Keep Linux-only
// imports out of it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Paths and names shared by the host (which builds the images) and the guest.
const (
	// Path is where the host's per-instance initramfs puts the
	// Config document.
	Path = "/etc/vmbox/instance.json"
	// ModulesListPath lists the kernel modules shipped in the base initramfs,
	// one per line in load order: "<name> <absolute .ko path> <deps|->".
	ModulesListPath = "/etc/vmbox/modules.txt"
	// DataLabel is the ext4 label of the data disk vmbox formats.
	DataLabel = "vmbox-data"
	// DataMountPoint is where the data disk is mounted in the guest.
	DataMountPoint = "/var/lib/vmbox"
	// HostAlias is the name /etc/hosts gives the host (the gateway).
	HostAlias = "host.vmbox.internal"
	// DefaultHostname is used when Config.Hostname is empty.
	DefaultHostname = "vmbox"
	// Version is the Config.Version this package writes and reads.
	Version = 1
)

// Network modes of Network.Mode.
const (
	// NetworkStatic configures a fixed address; the defaults match QEMU's
	// user-mode networking (slirp).
	NetworkStatic = "static"
	// NetworkDHCP asks the hypervisor's DHCP server (vz NAT) and renews the
	// lease in the background.
	NetworkDHCP = "dhcp"
	// NetworkNone leaves every interface but loopback down.
	NetworkNone = "none"
)

// Config is the per-instance configuration the host hands the guest
// agent, as JSON at Path. The host writes it at every start.
type Config struct {
	// Version is Version; a guest refuses a document of another version.
	Version int `json:"version"`
	// Name is the instance name, for messages.
	Name string `json:"name"`
	// Hostname is the guest's host name; DefaultHostname when empty.
	Hostname string `json:"hostname,omitempty"`
	// AuthorizedKey is the host client's public key as one authorized_keys
	// line ("ssh-ed25519 AAAA... comment").
	AuthorizedKey string `json:"authorizedKey"`
	// HostKey is the agent's SSH host private key, PEM ("OPENSSH PRIVATE KEY"),
	// unencrypted.
	HostKey string `json:"hostKey"`
	// BootTimeUnixNano is the host's wall clock when it started the VM. The
	// guest may have no RTC (microvm), so its clock is set from this when it
	// is behind.
	BootTimeUnixNano int64 `json:"bootTimeUnixNano"`
	// Network says how eth0 gets its address.
	Network Network `json:"network"`
	// DataDisk says what the guest expects of its data disk.
	DataDisk DataDisk `json:"dataDisk"`
	// Agent says where the agent serves the host.
	Agent Agent `json:"agent"`
	// Modules are kernel modules (by name, dependencies implied) loaded
	// before the agent serves. Others load on demand.
	Modules []string `json:"modules,omitempty"`
	// LateModules are kernel modules loaded once the host has first
	// connected to the agent: devices the first request does not need
	// (power button, memory balloon), kept off the boot's critical path.
	LateModules []string `json:"lateModules,omitempty"`
	// CPUs is the number of CPUs the guest should have online once ready
	// (it boots with maxcpus=1); 0 means all present CPUs.
	CPUs int `json:"cpus,omitempty"`
}

// Agent transports of Agent.Transport.
const (
	// AgentTCP serves on the guest's network address (Network's
	// interface, once configured), which QEMU's user networking forwards
	// a host loopback port to.
	AgentTCP = "tcp"
	// AgentVsock serves on AF_VSOCK (vz).
	AgentVsock = "vsock"
)

// Agent is where the agent serves SSH for the host. The agent also serves
// on a Unix socket inside the guest, whatever this says.
type Agent struct {
	// Transport is AgentTCP or AgentVsock.
	Transport string `json:"transport"`
	// Port is the TCP or vsock port.
	Port uint32 `json:"port"`
}

func (a *Agent) validate() error {
	switch a.Transport {
	case AgentTCP, AgentVsock:
	case "":
		return errors.New("transport is empty (want tcp or vsock)")
	default:
		return fmt.Errorf("transport %q is not one of tcp, vsock", a.Transport)
	}
	if a.Port < 1 || a.Port > 65535 {
		return fmt.Errorf("port %d is not in 1..65535", a.Port)
	}
	return nil
}

// Network configures the guest's one network interface.
type Network struct {
	// Mode is NetworkStatic, NetworkDHCP or NetworkNone.
	Mode string `json:"mode"`
	// Interface is the interface name; "eth0" when empty.
	Interface string `json:"interface,omitempty"`
	// Address is the static address in CIDR form (NetworkStatic only).
	Address string `json:"address,omitempty"`
	// Gateway is the static default route (NetworkStatic only). It is also
	// what HostAlias resolves to.
	Gateway string `json:"gateway,omitempty"`
	// DNS are name servers. With NetworkStatic they are required; with
	// NetworkDHCP they replace the servers the DHCP server offers.
	DNS []string `json:"dns,omitempty"`
	// Search are DNS search domains.
	Search []string `json:"search,omitempty"`
	// ProxyARP makes the guest answer ARP on the interface for the
	// addresses it routes through its other interfaces (its containers'):
	// QEMU's user networking then delivers a forwarded host port's
	// connection straight to a container's address.
	ProxyARP bool `json:"proxyARP,omitempty"`
}

// DataDisk describes the disk holding the guest's persistent state.
// A disk without any file system is formatted as ext4 labelled DataLabel;
// a disk holding anything else is never touched and is an error.
type DataDisk struct {
	// Required makes a missing disk an error. Without it the guest keeps
	// DataMountPoint on tmpfs (state is lost at shutdown).
	Required bool `json:"required,omitempty"`
	// Serial selects the virtio-blk disk whose serial matches; empty takes
	// the first virtio disk (vda).
	Serial string `json:"serial,omitempty"`
	// Fresh says the host created this disk and no boot has yet used it:
	// unrecognised data on it can only be an interrupted first format of
	// vmbox's own, so it is formatted again. A recognised foreign file
	// system is refused even so. The guest also holds back readiness until
	// a fresh disk is formatted, so a ready instance always has its disk.
	Fresh bool `json:"fresh,omitempty"`
}

// BootTime returns BootTimeUnixNano as a time, or the zero time when unset.
func (c *Config) BootTime() time.Time {
	if c.BootTimeUnixNano == 0 {
		return time.Time{}
	}
	return time.Unix(0, c.BootTimeUnixNano)
}

// EffectiveHostname is Hostname, or DefaultHostname when it is empty.
func (c *Config) EffectiveHostname() string {
	if c.Hostname == "" {
		return DefaultHostname
	}
	return c.Hostname
}

// Load reads, decodes and validates the Config at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read instance config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("instance config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates an Config document.
// Unknown fields are an error: host and guest ship together, so one is a typo
// or a mismatched build, not a newer peer.
func Parse(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// hostnameRE is RFC 1123: dot-separated labels of letters, digits and
// inner hyphens, at most 63 characters each.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// moduleNameRE is what the kernel accepts as a module name, allowing the
// dash spelling that modprobe also accepts.
var moduleNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,55}$`)

// ValidModuleName reports whether name is one the kernel accepts as a module
// name (or its dash spelling).
func ValidModuleName(name string) bool { return moduleNameRE.MatchString(name) }

// Validate reports the first problem with c, in one line.
func (c *Config) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("version %d not supported (want %d)", c.Version, Version)
	}
	if c.Hostname != "" && (len(c.Hostname) > 64 || !hostnameRE.MatchString(c.Hostname)) {
		return fmt.Errorf("hostname %q is not a valid host name", c.Hostname)
	}
	if strings.TrimSpace(c.AuthorizedKey) == "" {
		return errors.New("authorizedKey is empty")
	}
	if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(c.AuthorizedKey)); err != nil {
		return fmt.Errorf("authorizedKey: %w", err)
	} else if strings.TrimSpace(string(rest)) != "" {
		return errors.New("authorizedKey: more than one key")
	}
	if strings.TrimSpace(c.HostKey) == "" {
		return errors.New("hostKey is empty")
	}
	if _, err := ssh.ParsePrivateKey([]byte(c.HostKey)); err != nil {
		return fmt.Errorf("hostKey: %w", err)
	}
	if c.BootTimeUnixNano < 0 {
		return fmt.Errorf("bootTimeUnixNano %d is negative", c.BootTimeUnixNano)
	}
	if c.CPUs < 0 {
		return fmt.Errorf("cpus %d is negative", c.CPUs)
	}
	for _, m := range append(c.Modules[:len(c.Modules):len(c.Modules)], c.LateModules...) {
		if !ValidModuleName(m) {
			return fmt.Errorf("module name %q is not valid", m)
		}
	}
	if err := c.Agent.validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := c.Network.validate(); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if c.DataDisk.Serial != "" && (len(c.DataDisk.Serial) > 20 || strings.ContainsAny(c.DataDisk.Serial, "/\x00\n")) {
		// virtio-blk serials are at most 20 bytes (VIRTIO_BLK_ID_BYTES).
		return fmt.Errorf("dataDisk: serial %q is not a valid virtio-blk serial", c.DataDisk.Serial)
	}
	return nil
}

// interfaceNameRE matches what Linux accepts as an interface name (IFNAMSIZ-1).
var interfaceNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

func (n *Network) validate() error {
	switch n.Mode {
	case NetworkStatic, NetworkDHCP, NetworkNone:
	case "":
		return errors.New("mode is empty (want static, dhcp or none)")
	default:
		return fmt.Errorf("mode %q is not one of static, dhcp, none", n.Mode)
	}
	if n.Mode == NetworkStatic && (n.Address == "" || n.Gateway == "" || len(n.DNS) == 0) {
		return errors.New("mode static needs address, gateway and dns")
	}
	if n.Interface != "" && !interfaceNameRE.MatchString(n.Interface) {
		return fmt.Errorf("interface %q is not a valid interface name", n.Interface)
	}
	if n.Address != "" {
		p, err := netip.ParsePrefix(n.Address)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("address %q is not an IPv4 CIDR address", n.Address)
		}
		if n.Mode != NetworkStatic {
			return fmt.Errorf("address is only for mode static, not %s", n.Mode)
		}
	}
	if n.Gateway != "" {
		a, err := netip.ParseAddr(n.Gateway)
		if err != nil || !a.Is4() {
			return fmt.Errorf("gateway %q is not an IPv4 address", n.Gateway)
		}
		if n.Mode != NetworkStatic {
			return fmt.Errorf("gateway is only for mode static, not %s", n.Mode)
		}
	}
	for _, d := range n.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("dns server %q is not an IP address", d)
		}
	}
	for _, s := range n.Search {
		if !hostnameRE.MatchString(s) {
			return fmt.Errorf("search domain %q is not a valid domain", s)
		}
	}
	return nil
}

// StaticSettings returns the parsed address, gateway and DNS servers of a
// NetworkStatic configuration.
func (n *Network) StaticSettings() (addr netip.Prefix, gw netip.Addr, dns []netip.Addr, err error) {
	if addr, err = netip.ParsePrefix(n.Address); err != nil {
		return addr, gw, nil, fmt.Errorf("address %q: %w", n.Address, err)
	}
	if gw, err = netip.ParseAddr(n.Gateway); err != nil {
		return addr, gw, nil, fmt.Errorf("gateway %q: %w", n.Gateway, err)
	}
	if len(n.DNS) == 0 {
		return addr, gw, nil, errors.New("no dns server")
	}
	for _, s := range n.DNS {
		d, err := netip.ParseAddr(s)
		if err != nil {
			return addr, gw, nil, fmt.Errorf("dns server %q: %w", s, err)
		}
		dns = append(dns, d)
	}
	return addr, gw, dns, nil
}

// InterfaceName is Interface, or "eth0" when it is empty.
func (n *Network) InterfaceName() string {
	if n.Interface == "" {
		return "eth0"
	}
	return n.Interface
}
