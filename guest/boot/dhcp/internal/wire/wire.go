// Package wire owns the DHCPv4 message format (RFC 2131, options RFC
// 2132): just the fields and options a client of a hypervisor's NAT needs,
// shared by the client and the test server.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// BOOTP operations and DHCP message types (option 53).
const (
	BootRequest = 1
	BootReply   = 2

	Discover = 1
	Offer    = 2
	Request  = 3
	Decline  = 4
	Ack      = 5
	Nak      = 6
	Release  = 7
)

// DHCP option codes used here.
const (
	optPad          = 0
	optSubnetMask   = 1
	optRouter       = 3
	optDNS          = 6
	optHostname     = 12
	optDomainName   = 15
	optRequestedIP  = 50
	optLeaseTime    = 51
	optMessageType  = 53
	optServerID     = 54
	optParamRequest = 55
	optMaxSize      = 57
	optT1           = 58
	optT2           = 59
	optEnd          = 255
)

const (
	dhcpFixedLen  = 236 // BOOTP header up to the options' magic cookie
	dhcpMinLen    = 300 // BOOTP's minimum; some servers drop shorter requests
	dhcpMagic     = 0x63825363
	dhcpFlagBcast = 0x8000
	ServerPort    = 67
	ClientPort    = 68
)

// ParamRequest returns what a client asks the server for (option 55).
func ParamRequest() []byte {
	return []byte{optSubnetMask, optRouter, optDNS, optDomainName, optLeaseTime, optServerID, optT1, optT2}
}

// Message is a decoded DHCP message. Zero values mean "absent".
type Message struct {
	Op        uint8
	XID       uint32
	Secs      uint16
	Broadcast bool // ask the server to broadcast its answers
	CIAddr    netip.Addr
	YIAddr    netip.Addr
	SIAddr    netip.Addr
	GIAddr    netip.Addr
	CHAddr    net.HardwareAddr

	Type         uint8 // option 53
	ServerID     netip.Addr
	RequestedIP  netip.Addr
	SubnetMask   netip.Addr
	Routers      []netip.Addr
	DNS          []netip.Addr
	Hostname     string
	DomainName   string
	LeaseTime    time.Duration
	T1, T2       time.Duration
	ParamRequest []byte
	MaxSize      uint16
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func putAddr(b []byte, a netip.Addr) {
	if a.IsValid() {
		v := a.As4()
		copy(b, v[:])
	}
}

// Marshal encodes m with its options in a fixed order, padded to BOOTP's
// minimum length.
func (m *Message) Marshal() ([]byte, error) {
	if len(m.CHAddr) > 16 {
		return nil, fmt.Errorf("dhcp: hardware address of %d bytes", len(m.CHAddr))
	}
	for _, a := range []netip.Addr{m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr, m.ServerID, m.RequestedIP, m.SubnetMask} {
		if a.IsValid() && !a.Is4() {
			return nil, fmt.Errorf("dhcp: %s is not an IPv4 address", a)
		}
	}
	b := make([]byte, dhcpFixedLen+4, dhcpMinLen)
	b[0] = m.Op
	b[1] = 1 // htype: Ethernet
	b[2] = byte(len(m.CHAddr))
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	if m.Broadcast {
		binary.BigEndian.PutUint16(b[10:], dhcpFlagBcast)
	}
	putAddr(b[12:], m.CIAddr)
	putAddr(b[16:], m.YIAddr)
	putAddr(b[20:], m.SIAddr)
	putAddr(b[24:], m.GIAddr)
	copy(b[28:44], m.CHAddr)
	binary.BigEndian.PutUint32(b[dhcpFixedLen:], dhcpMagic)

	opt := func(code byte, data []byte) error {
		if len(data) > 255 {
			return fmt.Errorf("dhcp: option %d too long (%d bytes)", code, len(data))
		}
		b = append(b, code, byte(len(data)))
		b = append(b, data...)
		return nil
	}
	addrs := func(code byte, as []netip.Addr) error {
		var d []byte
		for _, a := range as {
			if !a.Is4() {
				return fmt.Errorf("dhcp: %s is not an IPv4 address", a)
			}
			v := a.As4()
			d = append(d, v[:]...)
		}
		return opt(code, d)
	}
	secs := func(code byte, d time.Duration) error {
		return opt(code, binary.BigEndian.AppendUint32(nil, uint32(d/time.Second)))
	}
	var errs []error
	if m.Type != 0 {
		errs = append(errs, opt(optMessageType, []byte{m.Type}))
	}
	if m.ServerID.IsValid() {
		errs = append(errs, addrs(optServerID, []netip.Addr{m.ServerID}))
	}
	if m.RequestedIP.IsValid() {
		errs = append(errs, addrs(optRequestedIP, []netip.Addr{m.RequestedIP}))
	}
	if m.LeaseTime > 0 {
		errs = append(errs, secs(optLeaseTime, m.LeaseTime))
	}
	if m.T1 > 0 {
		errs = append(errs, secs(optT1, m.T1))
	}
	if m.T2 > 0 {
		errs = append(errs, secs(optT2, m.T2))
	}
	if m.SubnetMask.IsValid() {
		errs = append(errs, addrs(optSubnetMask, []netip.Addr{m.SubnetMask}))
	}
	if len(m.Routers) > 0 {
		errs = append(errs, addrs(optRouter, m.Routers))
	}
	if len(m.DNS) > 0 {
		errs = append(errs, addrs(optDNS, m.DNS))
	}
	if m.Hostname != "" {
		errs = append(errs, opt(optHostname, []byte(m.Hostname)))
	}
	if m.DomainName != "" {
		errs = append(errs, opt(optDomainName, []byte(m.DomainName)))
	}
	if len(m.ParamRequest) > 0 {
		errs = append(errs, opt(optParamRequest, m.ParamRequest))
	}
	if m.MaxSize > 0 {
		errs = append(errs, opt(optMaxSize, binary.BigEndian.AppendUint16(nil, m.MaxSize)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b = append(b, optEnd)
	for len(b) < dhcpMinLen {
		b = append(b, optPad)
	}
	return b, nil
}

// Parse decodes a DHCP message. It rejects what is not DHCP (wrong
// magic, truncation, malformed options) rather than guessing.
func Parse(b []byte) (*Message, error) {
	if len(b) < dhcpFixedLen+4 {
		return nil, fmt.Errorf("dhcp: message too short (%d bytes)", len(b))
	}
	if binary.BigEndian.Uint32(b[dhcpFixedLen:]) != dhcpMagic {
		return nil, errors.New("dhcp: no magic cookie (plain BOOTP?)")
	}
	hlen := int(b[2])
	if b[1] != 1 || hlen != 6 {
		return nil, fmt.Errorf("dhcp: hardware type %d length %d is not Ethernet", b[1], hlen)
	}
	m := &Message{
		Op:        b[0],
		XID:       binary.BigEndian.Uint32(b[4:]),
		Secs:      binary.BigEndian.Uint16(b[8:]),
		Broadcast: binary.BigEndian.Uint16(b[10:])&dhcpFlagBcast != 0,
		CHAddr:    net.HardwareAddr(append([]byte(nil), b[28:28+hlen]...)),
	}
	for i, p := range []*netip.Addr{&m.CIAddr, &m.YIAddr, &m.SIAddr, &m.GIAddr} {
		if a := addr4(b[12+4*i:]); !a.IsUnspecified() {
			*p = a
		}
	}
	opts := b[dhcpFixedLen+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if code == optEnd {
			break
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return nil, fmt.Errorf("dhcp: option %d truncated", code)
		}
		data := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(data):]
		if err := m.setOption(code, data); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Message) setOption(code byte, data []byte) error {
	one := func() (netip.Addr, error) {
		if len(data) != 4 {
			return netip.Addr{}, fmt.Errorf("dhcp: option %d: want 4 bytes, got %d", code, len(data))
		}
		return addr4(data), nil
	}
	list := func() ([]netip.Addr, error) {
		if len(data) == 0 || len(data)%4 != 0 {
			return nil, fmt.Errorf("dhcp: option %d: %d bytes is not a list of addresses", code, len(data))
		}
		var out []netip.Addr
		for i := 0; i < len(data); i += 4 {
			out = append(out, addr4(data[i:]))
		}
		return out, nil
	}
	secs := func() (time.Duration, error) {
		if len(data) != 4 {
			return 0, fmt.Errorf("dhcp: option %d: want 4 bytes, got %d", code, len(data))
		}
		return time.Duration(binary.BigEndian.Uint32(data)) * time.Second, nil
	}
	var err error
	switch code {
	case optMessageType:
		if len(data) != 1 {
			return fmt.Errorf("dhcp: message type of %d bytes", len(data))
		}
		m.Type = data[0]
	case optServerID:
		m.ServerID, err = one()
	case optRequestedIP:
		m.RequestedIP, err = one()
	case optSubnetMask:
		m.SubnetMask, err = one()
	case optRouter:
		m.Routers, err = list()
	case optDNS:
		m.DNS, err = list()
	case optHostname:
		m.Hostname = string(data)
	case optDomainName:
		m.DomainName = string(data)
	case optLeaseTime:
		m.LeaseTime, err = secs()
	case optT1:
		m.T1, err = secs()
	case optT2:
		m.T2, err = secs()
	case optParamRequest:
		m.ParamRequest = append([]byte(nil), data...)
	case optMaxSize:
		if len(data) != 2 {
			return fmt.Errorf("dhcp: max message size of %d bytes", len(data))
		}
		m.MaxSize = binary.BigEndian.Uint16(data)
	}
	return err
}
