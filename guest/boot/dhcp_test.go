package boot

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// bootpHeader builds the fixed part of a message by hand, independently
// of marshal.
func bootpHeader(op byte, xid [4]byte, flags [2]byte, ciaddr, yiaddr [4]byte) []byte {
	b := []byte{op, 1, 6, 0}
	b = append(b, xid[:]...)
	b = append(b, 0, 0)        // secs
	b = append(b, flags[:]...) // flags
	b = append(b, ciaddr[:]...)
	b = append(b, yiaddr[:]...)
	b = append(b, make([]byte, 8)...) // siaddr, giaddr
	b = append(b, testMAC...)
	b = append(b, make([]byte, 10+64+128)...) // chaddr padding, sname, file
	return append(b, 0x63, 0x82, 0x53, 0x63)
}

func TestDHCPMarshalKnownBytes(t *testing.T) {
	m := &dhcpMessage{
		Op:           bootRequest,
		XID:          0x01020304,
		Broadcast:    true,
		CHAddr:       testMAC,
		Type:         dhcpDiscover,
		Hostname:     "vm",
		ParamRequest: []byte{1, 3, 6},
		MaxSize:      1500,
	}
	got, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := bootpHeader(1, [4]byte{1, 2, 3, 4}, [2]byte{0x80, 0}, [4]byte{}, [4]byte{})
	want = append(want,
		53, 1, 1,
		12, 2, 'v', 'm',
		55, 3, 1, 3, 6,
		57, 2, 0x05, 0xdc,
		255)
	want = append(want, make([]byte, 300-len(want))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal:\n got % x\nwant % x", got, want)
	}

	r := &dhcpMessage{
		Op:     bootRequest,
		XID:    0xdeadbeef,
		CIAddr: netip.MustParseAddr("10.0.2.15"),
		CHAddr: testMAC,
		Type:   dhcpRequest,
	}
	got, err = r.marshal()
	if err != nil {
		t.Fatal(err)
	}
	want = bootpHeader(1, [4]byte{0xde, 0xad, 0xbe, 0xef}, [2]byte{}, [4]byte{10, 0, 2, 15}, [4]byte{})
	want = append(want, 53, 1, 3, 255)
	want = append(want, make([]byte, 300-len(want))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("marshal renew request:\n got % x\nwant % x", got, want)
	}
}

func TestDHCPParseKnownBytes(t *testing.T) {
	// An ACK as a server might send it: options in its own order, pads,
	// an option we ignore (43), and garbage after the end option.
	b := bootpHeader(2, [4]byte{1, 2, 3, 4}, [2]byte{0x80, 0}, [4]byte{}, [4]byte{192, 168, 64, 5})
	b = append(b,
		0, 0, // pads
		53, 1, 5,
		1, 4, 255, 255, 255, 0,
		3, 4, 192, 168, 64, 1,
		6, 8, 192, 168, 64, 1, 8, 8, 8, 8,
		51, 4, 0, 0, 0x0e, 0x10, // 3600 s
		54, 4, 192, 168, 64, 1,
		15, 4, 'l', 'a', 'n', '.',
		43, 2, 9, 9,
		255, 1, 2, 3)
	m, err := parseDHCP(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &dhcpMessage{
		Op:         bootReply,
		XID:        0x01020304,
		Broadcast:  true,
		YIAddr:     netip.MustParseAddr("192.168.64.5"),
		CHAddr:     testMAC,
		Type:       dhcpAck,
		SubnetMask: netip.MustParseAddr("255.255.255.0"),
		Routers:    []netip.Addr{netip.MustParseAddr("192.168.64.1")},
		DNS:        []netip.Addr{netip.MustParseAddr("192.168.64.1"), netip.MustParseAddr("8.8.8.8")},
		LeaseTime:  time.Hour,
		ServerID:   netip.MustParseAddr("192.168.64.1"),
		DomainName: "lan.",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("parse:\n got %+v\nwant %+v", m, want)
	}
}

func TestDHCPRoundTrip(t *testing.T) {
	a := netip.MustParseAddr
	tests := []*dhcpMessage{
		{Op: bootRequest, XID: 1, CHAddr: testMAC, Type: dhcpDiscover, Broadcast: true, ParamRequest: paramRequest, MaxSize: 1500, Hostname: "vmbox"},
		{Op: bootRequest, XID: 2, CHAddr: testMAC, Type: dhcpRequest, ServerID: a("10.0.2.2"), RequestedIP: a("10.0.2.15")},
		{Op: bootReply, XID: 3, CHAddr: testMAC, Type: dhcpOffer, YIAddr: a("10.0.2.15"), SIAddr: a("10.0.2.2"), ServerID: a("10.0.2.2"),
			LeaseTime: 24 * time.Hour, T1: time.Hour, T2: 2 * time.Hour, SubnetMask: a("255.255.255.0"),
			Routers: []netip.Addr{a("10.0.2.2")}, DNS: []netip.Addr{a("10.0.2.3")}, DomainName: "example.com"},
		{Op: bootReply, XID: 4, CHAddr: testMAC, Type: dhcpNak, ServerID: a("10.0.2.2"), GIAddr: a("10.1.1.1"), CIAddr: a("10.0.2.16")},
	}
	for _, m := range tests {
		b, err := m.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < dhcpMinLen {
			t.Errorf("message %d is %d bytes, under BOOTP's minimum", m.XID, len(b))
		}
		got, err := parseDHCP(b)
		if err != nil {
			t.Fatalf("message %d: %v", m.XID, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of message %d:\n got %+v\nwant %+v", m.XID, got, m)
		}
	}
}

func TestDHCPParseErrors(t *testing.T) {
	good, err := (&dhcpMessage{Op: bootReply, XID: 9, CHAddr: testMAC, Type: dhcpAck}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	opts := dhcpFixedLen + 4
	tests := []struct {
		name   string
		b      []byte
		errHas string
	}{
		{"short", good[:100], "too short"},
		{"no magic", mod(func(b []byte) []byte { b[dhcpFixedLen] = 0; return b }), "magic"},
		{"not ethernet", mod(func(b []byte) []byte { b[1] = 6; return b }), "not Ethernet"},
		{"truncated option", append(good[:opts:opts], 6, 8, 1, 2, 3), "truncated"},
		{"bad address list", append(good[:opts:opts], 6, 3, 1, 2, 3, 255), "not a list"},
		{"bad server id", append(good[:opts:opts], 54, 2, 1, 2, 255), "want 4 bytes"},
		{"bad type", append(good[:opts:opts], 53, 2, 1, 2, 255), "message type"},
		{"bad lease", append(good[:opts:opts], 51, 3, 1, 2, 3, 255), "want 4 bytes"},
	}
	for _, tt := range tests {
		_, err := parseDHCP(tt.b)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.errHas)
		}
	}
	if _, err := (&dhcpMessage{CHAddr: make([]byte, 17)}).marshal(); err == nil {
		t.Error("marshal of a 17-byte hardware address: no error")
	}
	if _, err := (&dhcpMessage{CHAddr: testMAC, ServerID: netip.MustParseAddr("::1")}).marshal(); err == nil {
		t.Error("marshal of an IPv6 server ID: no error")
	}
}

func TestLeaseFromAck(t *testing.T) {
	a := netip.MustParseAddr
	now := time.Unix(1000, 0)
	tests := []struct {
		name   string
		m      dhcpMessage
		want   DHCPLease
		errHas string
	}{
		{"defaults", dhcpMessage{Type: dhcpAck, YIAddr: a("10.0.2.15"), LeaseTime: time.Hour},
			DHCPLease{Addr: netip.MustParsePrefix("10.0.2.15/24"), Duration: time.Hour, T1: 30 * time.Minute, T2: 3150 * time.Second, Acquired: now}, ""},
		{"full", dhcpMessage{Type: dhcpAck, YIAddr: a("192.168.64.7"), SubnetMask: a("255.255.255.128"), Routers: []netip.Addr{a("192.168.64.1"), a("192.168.64.2")},
			DNS: []netip.Addr{a("192.168.64.1")}, DomainName: "lan", ServerID: a("192.168.64.1"), LeaseTime: 100 * time.Second, T1: 10 * time.Second, T2: 20 * time.Second},
			DHCPLease{Addr: netip.MustParsePrefix("192.168.64.7/25"), Router: a("192.168.64.1"), DNS: []netip.Addr{a("192.168.64.1")}, Domain: "lan",
				Server: a("192.168.64.1"), Duration: 100 * time.Second, T1: 10 * time.Second, T2: 20 * time.Second, Acquired: now}, ""},
		{"t2 before t1", dhcpMessage{Type: dhcpAck, YIAddr: a("10.0.0.2"), LeaseTime: 80 * time.Second, T1: 50 * time.Second, T2: 40 * time.Second},
			DHCPLease{Addr: netip.MustParsePrefix("10.0.0.2/24"), Duration: 80 * time.Second, T1: 50 * time.Second, T2: 70 * time.Second, Acquired: now}, ""},
		{"no lease time", dhcpMessage{Type: dhcpAck, YIAddr: a("10.0.0.2")},
			DHCPLease{Addr: netip.MustParsePrefix("10.0.0.2/24"), Duration: 0xffffffff * time.Second, T1: 0xffffffff * time.Second / 2, T2: 0xffffffff*time.Second - 0xffffffff*time.Second/8, Acquired: now}, ""},
		{"not an ack", dhcpMessage{Type: dhcpOffer, YIAddr: a("10.0.0.2")}, DHCPLease{}, "not an ACK"},
		{"no address", dhcpMessage{Type: dhcpAck}, DHCPLease{}, "without an address"},
		{"bad mask", dhcpMessage{Type: dhcpAck, YIAddr: a("10.0.0.2"), SubnetMask: a("255.0.255.0")}, DHCPLease{}, "not a prefix mask"},
	}
	for _, tt := range tests {
		l, err := leaseFromAck(&tt.m, now)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("%s: error = %v, want %q", tt.name, err, tt.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(*l, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, *l, tt.want)
		}
	}
}
