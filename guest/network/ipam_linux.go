package network

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// validName is Docker's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// reservedNames cannot be given to user networks: they are the predefined
// networks' or mean the default network.
var reservedNames = []string{api.NetworkBridge, api.NetworkHost, api.NetworkNone, "default"}

func validateName(name string) error {
	if name == "" {
		return errorf(ErrInvalid, "network name must not be empty")
	}
	if !validName.MatchString(name) {
		return errorf(ErrInvalid, "invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	for _, r := range reservedNames {
		if name == r {
			return errorf(ErrInvalid, "network name %s is reserved: it is a pre-defined network", name)
		}
	}
	return nil
}

// parseCreate checks a creation request and returns the network it asks
// for, without ID, subnet when none was given, and gateway when none was
// given.
func parseCreate(a api.NetworkCreateArgs) (Network, error) {
	n := Network{
		Name: a.Name, Driver: a.Driver, Internal: a.Internal,
		Labels: maps.Clone(a.Labels), Options: maps.Clone(a.Options),
	}
	if err := validateName(a.Name); err != nil {
		return Network{}, err
	}
	switch a.Driver {
	case "", DriverBridge:
		n.Driver = DriverBridge
	default:
		return Network{}, errorf(ErrInvalid, "network driver %q is not supported: only bridge is", a.Driver)
	}
	if a.Subnet == "" && (a.Gateway != "" || a.IPRange != "") {
		return Network{}, errorf(ErrInvalid, "a gateway or an IP range needs a subnet")
	}
	if a.Subnet != "" {
		p, err := parseSubnet("subnet", a.Subnet)
		if err != nil {
			return Network{}, err
		}
		if p.Bits() > 30 {
			return Network{}, errorf(ErrInvalid, "subnet %s is too small: the prefix must be /30 or shorter", p)
		}
		n.Subnet = p
	}
	if a.IPRange != "" {
		r, err := parseSubnet("ip-range", a.IPRange)
		if err != nil {
			return Network{}, err
		}
		if r.Bits() < n.Subnet.Bits() || !n.Subnet.Contains(r.Addr()) {
			return Network{}, errorf(ErrInvalid, "ip-range %s is not inside subnet %s", r, n.Subnet)
		}
		n.IPRange = r
	}
	if a.Gateway != "" {
		g, err := netip.ParseAddr(a.Gateway)
		if err != nil || !g.Is4() {
			return Network{}, errorf(ErrInvalid, "invalid gateway %q: want an IPv4 address (IPv6 is not supported)", a.Gateway)
		}
		if !n.Subnet.Contains(g) || g == n.Subnet.Addr() || g == lastAddr(n.Subnet) {
			return Network{}, errorf(ErrInvalid, "gateway %s is not a host address of subnet %s", g, n.Subnet)
		}
		n.Gateway = g
	}
	if name, ok := a.Options[optBridgeName]; ok {
		if err := validateInterfaceName(name); err != nil {
			return Network{}, errorf(ErrInvalid, "bridge name: %w", err)
		}
		n.Bridge = name
	}
	if v, ok := a.Options[optMTU]; ok {
		if _, err := parseMTU(v); err != nil {
			return Network{}, err
		}
	}
	if v, ok := a.Options[optMasquerade]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return Network{}, errorf(ErrInvalid, "option %s: %q is not a boolean", optMasquerade, v)
		}
	}
	return n, nil
}

// parseSubnet parses an IPv4 CIDR that must be a network's own address.
func parseSubnet(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errorf(ErrInvalid, "invalid %s %q: want a CIDR such as 172.20.0.0/16", what, s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errorf(ErrInvalid, "invalid %s %s: IPv6 is not supported", what, s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, errorf(ErrInvalid, "invalid %s %s: it should be %s", what, s, p.Masked())
	}
	a := p.Addr()
	if a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() || lastAddr(p).IsMulticast() {
		return netip.Prefix{}, errorf(ErrInvalid, "invalid %s %s: not a unicast range", what, s)
	}
	return p, nil
}

func parseMTU(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 68 || v > 65535 {
		return 0, errorf(ErrInvalid, "option %s: %q is not an MTU (68-65535)", optMTU, s)
	}
	return v, nil
}

// validateInterfaceName checks a name the kernel accepts for an
// interface.
func validateInterfaceName(s string) error {
	if s == "" || len(s) > maxInterfaceBytes || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\x00") {
		return fmt.Errorf("%q is not an interface name (1-%d characters, no '/', ':' or spaces)", s, maxInterfaceBytes)
	}
	return nil
}

// defaultPools are the subnets networks get when they ask for none, in
// Docker's order: the /16s of 172.17-31, then the /20s of 192.168.
func defaultPools() []netip.Prefix {
	var out []netip.Prefix
	for b := 17; b <= 31; b++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16))
	}
	for c := 0; c < 256; c += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(c), 0}), 20))
	}
	return out
}

// pickPool returns the first default pool that overlaps nothing taken.
func pickPool(taken []netip.Prefix) (netip.Prefix, error) {
next:
	for _, p := range defaultPools() {
		for _, t := range taken {
			if t.Overlaps(p) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, errorf(ErrInvalid, "all predefined address pools have been fully subnetted")
}

// pool hands out a network's container addresses: lowest free first, from
// the IP range (or the subnet), never the subnet's own or broadcast
// address, nor the gateway.
type pool struct {
	subnet  netip.Prefix
	rng     netip.Prefix
	gateway netip.Addr
	used    map[netip.Addr]string // address → container ID
}

func newPool(subnet, rng netip.Prefix, gateway netip.Addr) *pool {
	if !rng.IsValid() {
		rng = subnet
	}
	return &pool{subnet: subnet, rng: rng, gateway: gateway, used: map[netip.Addr]string{}}
}

// reserved tells the addresses no container may have.
func (p *pool) reserved(a netip.Addr) bool {
	return a == p.subnet.Addr() || a == lastAddr(p.subnet) || a == p.gateway
}

// allocate takes the lowest free address of the range for owner.
func (p *pool) allocate(owner string) (netip.Addr, error) {
	last := lastAddr(p.rng)
	for a := p.rng.Addr(); a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if p.reserved(a) {
			continue
		}
		if _, ok := p.used[a]; !ok {
			p.used[a] = owner
			return a, nil
		}
	}
	return netip.Addr{}, errorf(ErrConflict, "no available IPv4 addresses on this network's address pools: %s (%s)", p.subnet, p.rng)
}

// reserve takes a static address for owner: any host address of the
// subnet, inside the range or not, as Docker allows.
func (p *pool) reserve(a netip.Addr, owner string) error {
	a = a.Unmap()
	if !a.Is4() || !p.subnet.Contains(a) {
		return errorf(ErrInvalid, "invalid address %s: it does not belong to any of this network's subnets (%s)", a, p.subnet)
	}
	if p.reserved(a) {
		return errorf(ErrInvalid, "invalid address %s: it is the network's own, broadcast or gateway address", a)
	}
	if _, ok := p.used[a]; ok {
		return errorf(ErrConflict, "Address already in use: %s", a)
	}
	p.used[a] = owner
	return nil
}

func (p *pool) release(a netip.Addr) { delete(p.used, a) }

// lastAddr is p's highest address: the broadcast address of a subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() {
		return netip.Addr{}
	}
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// macFor is the MAC Docker derives from an IPv4 address, so that an
// address keeps its MAC and neighbours' caches stay right when it is
// reused: 02:42 then the address.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}
