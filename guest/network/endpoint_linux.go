package network

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// EndpointConfig is a container joining a network.
type EndpointConfig struct {
	ContainerID, ContainerName string
	// Aliases are more names the container has on this network's DNS.
	Aliases []string
	// IPv4 is a static address inside the subnet; zero takes the lowest
	// free one.
	IPv4 netip.Addr
	// NetNS is the path of the container's network namespace, e.g.
	// /proc/1234/ns/net.
	NetNS string
	// Interface is the name inside the container: "eth0", "eth1", ...
	Interface string
	// DefaultRoute routes 0/0 through this network's gateway (the
	// container's first network). Internal networks never do.
	DefaultRoute bool
}

// Endpoint is a container on a network.
type Endpoint struct {
	ID          string
	NetworkID   string
	NetworkName string
	// Addr is the container's address with the subnet's length.
	Addr      netip.Prefix
	Gateway   netip.Addr
	MAC       net.HardwareAddr
	Interface string // in the container
	HostVeth  string // the VM's side, on the bridge
	Aliases   []string
	// DNSNames are the names the network's DNS resolves to Addr: the
	// container's name, its aliases and its short ID (none on the
	// default bridge, which has no DNS).
	DNSNames []string
}

func (e Endpoint) clone() Endpoint {
	e.MAC = slices.Clone(e.MAC)
	e.Aliases = slices.Clone(e.Aliases)
	e.DNSNames = slices.Clone(e.DNSNames)
	return e
}

type endpointState struct {
	Endpoint
	containerName string
	seq           uint64
}

// Connect puts a container on a network: the network's bridge, rules and
// DNS server first if this is its first container, then an address, a
// veth pair with one end in c.NetNS, and the container's names on the
// network's DNS.
func (m *Manager) Connect(ctx context.Context, netRef string, c EndpointConfig) (Endpoint, error) {
	if c.ContainerID == "" {
		return Endpoint{}, errorf(ErrInvalid, "connect: no container ID")
	}
	if c.NetNS == "" {
		return Endpoint{}, errorf(ErrInvalid, "connect: no network namespace")
	}
	if c.Interface == "" {
		c.Interface = "eth0"
	}
	if err := validateInterfaceName(c.Interface); err != nil {
		return Endpoint{}, errorf(ErrInvalid, "connect: %w", err)
	}
	if err := m.lock(ctx); err != nil {
		return Endpoint{}, err
	}
	defer m.unlock()
	n, err := m.find(netRef)
	if err != nil {
		return Endpoint{}, err
	}
	switch n.Driver {
	case DriverBridge:
	case DriverHost:
		return Endpoint{}, errorf(ErrInvalid, "container cannot be disconnected from host network or connected to host network")
	default:
		return Endpoint{}, errorf(ErrInvalid, "container cannot be connected to network %s: it has no endpoints (driver %s)", n.Name, n.Driver)
	}
	name := c.ContainerName
	if name == "" {
		name = c.ContainerID
	}
	if _, ok := n.endpoints[c.ContainerID]; ok {
		return Endpoint{}, errorf(ErrConflict, "endpoint with name %s already exists in network %s", name, n.Name)
	}
	if c.IPv4.IsValid() && !n.user() {
		return Endpoint{}, errorf(ErrInvalid, "user specified IP address is supported on user defined networks only")
	}
	if err := ctx.Err(); err != nil {
		return Endpoint{}, err
	}
	if err := m.bringUp(ctx, n); err != nil {
		return Endpoint{}, err
	}
	var addr netip.Addr
	if c.IPv4.IsValid() {
		addr = c.IPv4.Unmap()
		err = n.pool.reserve(addr, c.ContainerID)
	} else {
		addr, err = n.pool.allocate(c.ContainerID)
	}
	if err != nil {
		return Endpoint{}, err
	}
	ep := Endpoint{
		ID: newID(), NetworkID: n.ID, NetworkName: n.Name,
		Addr: netip.PrefixFrom(addr, n.Subnet.Bits()), Gateway: n.Gateway, MAC: macFor(addr),
		Interface: c.Interface, Aliases: slices.Clone(c.Aliases),
	}
	if n.user() {
		ep.DNSNames = dnsNames(c)
	}
	if err := plumb(n, c, &ep); err != nil {
		n.pool.release(addr)
		return Endpoint{}, err
	}
	if n.res != nil {
		n.res.add(addr, ep.DNSNames)
		m.peers.add(c.ContainerID, addr, n.res)
	}
	m.seq++
	n.endpoints[c.ContainerID] = &endpointState{Endpoint: ep, containerName: name, seq: m.seq}
	return ep.clone(), nil
}

// dnsNames are a container's names on a user network, Docker's: its name,
// its aliases, its short ID, without repeats.
func dnsNames(c EndpointConfig) []string {
	var out []string
	add := func(s string) {
		s = strings.TrimPrefix(s, "/")
		if s != "" && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, s) }) {
			out = append(out, s)
		}
	}
	add(c.ContainerName)
	for _, a := range c.Aliases {
		add(a)
	}
	add(c.ContainerID[:min(12, len(c.ContainerID))])
	return out
}

// Disconnect takes a container off a network: its veth (unless its
// namespace, and the veth with it, is gone already), its address and its
// names.
func (m *Manager) Disconnect(ctx context.Context, netRef, containerID string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.unlock()
	n, err := m.find(netRef)
	if err != nil {
		return err
	}
	ep, ok := n.endpoints[containerID]
	if !ok {
		return errorf(ErrNotFound, "container %s is not connected to network %s", containerID, n.Name)
	}
	if err := deleteLink(ep.HostVeth); err != nil {
		return err
	}
	n.pool.release(ep.Addr.Addr())
	if n.res != nil {
		n.res.remove(ep.Addr.Addr(), ep.DNSNames)
		m.peers.remove(containerID, ep.Addr.Addr(), n.res)
	}
	delete(n.endpoints, containerID)
	return nil
}

// Endpoints returns the container's endpoints in the order it joined
// their networks.
func (m *Manager) Endpoints(containerID string) []Endpoint {
	m.rlock()
	defer m.unlock()
	var eps []*endpointState
	for _, n := range m.nets {
		if ep, ok := n.endpoints[containerID]; ok {
			eps = append(eps, ep)
		}
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].seq < eps[j].seq })
	out := make([]Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = ep.clone()
	}
	return out
}

// resourceContainer is ep as a network lists it.
func (ep *endpointState) resourceContainer() api.NetworkContainer {
	return api.NetworkContainer{
		Name:        ep.containerName,
		EndpointID:  ep.ID,
		MacAddress:  ep.MAC.String(),
		IPv4Address: ep.Addr.String(),
	}
}
