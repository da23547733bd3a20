package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// kernelModules are what bridge networking needs of a modular kernel:
// bridges and veths, and nftables with NAT for the masquerade. Their own
// dependencies (nf_defrag_ipv4/6, stp, llc, libcrc32c) come with them.
var kernelModules = []string{"bridge", "veth", "nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_masq"}

// prepareKernel loads the modules and turns IPv4 forwarding on, once.
// Call with the Manager locked.
func (m *Manager) prepareKernel(ctx context.Context) error {
	if m.kernelReady {
		return nil
	}
	if m.opts.LoadModule != nil {
		for _, mod := range kernelModules {
			if err := m.opts.LoadModule(ctx, mod); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// A module may be built in under another name on some
				// kernel; what it is needed for fails later with the
				// kernel's own error if it really is missing.
				m.log.Warn("loading a kernel module for networking", "module", mod, "err", err)
			}
		}
	}
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	m.kernelReady = true
	return nil
}

func writeSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// bringUp makes n's bridge, rules and DNS server exist, taking over what
// an earlier run left. Call with the Manager locked.
func (m *Manager) bringUp(ctx context.Context, n *netState) error {
	if n.up && linkExists(n.Bridge) {
		// The DNS server may have failed to start before.
		m.startDNS(n)
		return nil
	}
	if n.up {
		// Someone deleted the bridge: make it again, and the DNS server
		// on its address with it.
		m.log.Warn("network's bridge disappeared; making it again", "network", n.Name, "bridge", n.Bridge)
		m.stopDNS(n)
		n.up = false
	}
	if err := checkInterfaces(n); err != nil {
		return err
	}
	if err := m.prepareKernel(ctx); err != nil {
		return err
	}
	if err := ensureBridge(n.Bridge, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()), mtuOf(n.Network)); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if len(n.endpoints) == 0 {
		// Endpoints live in memory only, so every veth on the bridge now
		// is an earlier run's.
		m.removeStaleVeths(n.Bridge)
	} else {
		// The bridge was made again under live endpoints.
		m.reattach(n)
	}
	n.up = true
	if err := m.syncRules(); err != nil {
		n.up = false
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	m.startDNS(n)
	return nil
}

// checkInterfaces refuses to put n's subnet on a bridge when another
// interface has an address in it (a Docker on the same Linux host has
// docker0 on 172.17.0.0/16): two routes to one subnet would cut off one
// side or the other.
func checkInterfaces(n *netState) error {
	ifaces, err := interfacePrefixes()
	if err != nil {
		return fmt.Errorf("network %s: read the interfaces' addresses: %w", n.Name, err)
	}
	for _, p := range ifaces {
		if p.link != n.Bridge && p.prefix.Overlaps(n.Subnet) {
			return errorf(ErrConflict, "network %s: its subnet %s overlaps %s on interface %s", n.Name, n.Subnet, p.prefix, p.link)
		}
	}
	return nil
}

func mtuOf(n Network) int {
	if v, ok := n.Options[optMTU]; ok {
		if mtu, err := parseMTU(v); err == nil {
			return mtu
		}
	}
	return defaultMTU
}

// ensureBridge makes the bridge name exist, with gw as its only IPv4
// address, and up.
func ensureBridge(name string, gw netip.Prefix, mtu int) error {
	link, err := netlink.LinkByName(name)
	switch {
	case isNotFound(err):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{
			Name: name, MTU: mtu,
			// A bridge takes the lowest MAC of its ports unless it has
			// one of its own; set one so that it does not change, and
			// neighbours' caches with it, as containers come and go.
			HardwareAddr: macFor(gw.Addr()),
		}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("bridge %s: %w", name, err)
	case link.Type() != "bridge":
		return fmt.Errorf("interface %s exists and is not a bridge (%s)", name, link.Type())
	}
	want := &netlink.Addr{IPNet: ipNet(gw)}
	if err := netlink.AddrReplace(link, want); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", name, gw, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: addresses: %w", name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != want.IPNet.String() {
			// An earlier network's, whose bridge name this one reuses.
			if err := netlink.AddrDel(link, &a); err != nil {
				return fmt.Errorf("bridge %s: remove address %s: %w", name, a.IPNet, err)
			}
		}
	}
	if link.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("bridge %s: mtu %d: %w", name, mtu, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", name, err)
	}
	return nil
}

// removeStaleVeths deletes the veths attached to bridge. Failures only
// leave clutter: they are logged.
func (m *Manager) removeStaleVeths(bridge string) {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return
	}
	links, err := netlink.LinkList()
	if err != nil {
		m.log.Warn("listing interfaces for stale veths", "err", err)
		return
	}
	for _, l := range links {
		if l.Type() == "veth" && l.Attrs().MasterIndex == br.Attrs().Index {
			if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
				m.log.Warn("removing a stale veth", "veth", l.Attrs().Name, "err", err)
			}
		}
	}
}

// reattach puts n's endpoints' veths on its bridge. Failures cost only
// those endpoints their network: they are logged.
func (m *Manager) reattach(n *netState) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return
	}
	for _, ep := range n.endpoints {
		l, err := netlink.LinkByName(ep.HostVeth)
		if err == nil {
			err = netlink.LinkSetMaster(l, br)
		}
		if err != nil && !isNotFound(err) {
			m.log.Warn("attaching a veth to a bridge made again", "veth", ep.HostVeth, "bridge", n.Bridge, "err", err)
		}
	}
}

// deleteLink deletes the interface name if it exists.
func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// ifacePrefix is a subnet of one of the VM's interfaces.
type ifacePrefix struct {
	prefix netip.Prefix
	link   string
}

// interfacePrefixes are the IPv4 subnets of this network namespace's
// interfaces.
func interfacePrefixes() ([]ifacePrefix, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	var out []ifacePrefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, ifacePrefix{netip.PrefixFrom(ip, bits).Masked(), names[a.LinkIndex]})
	}
	return out, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().As4()
	return &net.IPNet{IP: net.IP(a[:]), Mask: net.CIDRMask(p.Bits(), 32)}
}

// vethName is a fresh name for the VM's side of an endpoint, as Docker
// names them.
func vethName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // never fails on Linux
	return "veth" + hex.EncodeToString(b)[:7]
}

// plumb creates the endpoint's veth pair: the VM's side on the bridge,
// the container's in its namespace, configured. On failure nothing is
// left.
func plumb(n *netState, c EndpointConfig, ep *Endpoint) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	ns, err := netns.GetFromPath(c.NetNS)
	if err != nil {
		return errorf(ErrInvalid, "network namespace %s: %w", c.NetNS, err)
	}
	defer ns.Close()
	mtu := br.Attrs().MTU
	var veth *netlink.Veth
	for try := 0; ; try++ {
		ep.HostVeth = vethName()
		veth = &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MTU: mtu, MasterIndex: br.Attrs().Index},
			PeerName:         c.Interface,
			PeerHardwareAddr: ep.MAC,
			PeerNamespace:    netlink.NsFd(int(ns)),
		}
		err = netlink.LinkAdd(veth)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) {
			// The pair may exist, made before attaching it failed.
			_ = deleteLink(ep.HostVeth)
			return fmt.Errorf("create veth pair: %w", err)
		}
		// The kernel does not say which side's name is taken.
		if !linkExists(ep.HostVeth) {
			return errorf(ErrConflict, "interface %s already exists in the container", c.Interface)
		}
		if try == 3 {
			return fmt.Errorf("create veth pair: %w", err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			_ = deleteLink(ep.HostVeth)
		}
	}()
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := netlink.LinkSetMaster(host, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", ep.HostVeth, n.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s up: %w", ep.HostVeth, err)
	}
	if err := configureInside(ns, c, ep, n.Internal); err != nil {
		return fmt.Errorf("in the container's namespace: %w", err)
	}
	ok = true
	return nil
}

// configureInside gives the container's side its address, brings it and
// loopback up, and routes the default through the gateway when asked.
func configureInside(ns netns.NsHandle, c EndpointConfig, ep *Endpoint, internal bool) error {
	// Routing only: with no family named, netlink also opens XFRM and
	// netfilter sockets, which a kernel without those modules refuses.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(c.Interface)
	if err != nil {
		return fmt.Errorf("interface %s: %w", c.Interface, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(ep.Addr)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", ep.Addr, c.Interface, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", c.Interface, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
	}
	if c.DefaultRoute && !internal {
		gw := ep.Gateway.As4()
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(gw[:]), Family: netlink.FAMILY_V4}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", ep.Gateway, err)
		}
	}
	return nil
}
