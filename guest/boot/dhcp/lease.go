// Package dhcp owns the guest's DHCPv4 client: acquiring a lease from a
// hypervisor's NAT and keeping it renewed. Applying a lease to the
// interface is the caller's business.
package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vmbox/vmbox/guest/boot/dhcp/internal/wire"
)

// Lease is what a DHCP server granted.
type Lease struct {
	Addr     netip.Prefix // address with its subnet
	Router   netip.Addr   // default gateway; invalid when none was offered
	DNS      []netip.Addr
	Domain   string
	Server   netip.Addr // the server that granted it
	Duration time.Duration
	T1, T2   time.Duration // renew and rebind times, from Acquired
	Acquired time.Time
}

// leaseFromAck builds a lease from a DHCPACK received at now, defaulting
// the mask from the address class's usual /24 and T1/T2 per RFC 2131.
func leaseFromAck(m *wire.Message, now time.Time) (*Lease, error) {
	if m.Type != wire.Ack {
		return nil, fmt.Errorf("dhcp: message type %d is not an ACK", m.Type)
	}
	if !m.YIAddr.IsValid() {
		return nil, errors.New("dhcp: ACK without an address")
	}
	bits := 24
	if m.SubnetMask.IsValid() {
		mask := m.SubnetMask.As4()
		ones, size := net.IPMask(mask[:]).Size()
		if size == 0 || ones == 0 {
			return nil, fmt.Errorf("dhcp: subnet mask %s is not a prefix mask", m.SubnetMask)
		}
		bits = ones
	}
	l := &Lease{
		Addr:     netip.PrefixFrom(m.YIAddr, bits),
		DNS:      m.DNS,
		Domain:   m.DomainName,
		Server:   m.ServerID,
		Duration: m.LeaseTime,
		T1:       m.T1,
		T2:       m.T2,
		Acquired: now,
	}
	if len(m.Routers) > 0 {
		l.Router = m.Routers[0]
	}
	if l.Duration <= 0 {
		// No lease time: the address is ours for as long as uint32 seconds go.
		l.Duration = 0xffffffff * time.Second
	}
	if l.T1 <= 0 || l.T1 >= l.Duration {
		l.T1 = l.Duration / 2
	}
	if l.T2 <= 0 || l.T2 >= l.Duration || l.T2 < l.T1 {
		l.T2 = l.Duration - l.Duration/8 // 7/8 without overflowing
	}
	return l, nil
}
