package wire

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
	m := &Message{
		Op:           BootRequest,
		XID:          0x01020304,
		Broadcast:    true,
		CHAddr:       testMAC,
		Type:         Discover,
		Hostname:     "vm",
		ParamRequest: []byte{1, 3, 6},
		MaxSize:      1500,
	}
	got, err := m.Marshal()
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

	r := &Message{
		Op:     BootRequest,
		XID:    0xdeadbeef,
		CIAddr: netip.MustParseAddr("10.0.2.15"),
		CHAddr: testMAC,
		Type:   Request,
	}
	got, err = r.Marshal()
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
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{
		Op:         BootReply,
		XID:        0x01020304,
		Broadcast:  true,
		YIAddr:     netip.MustParseAddr("192.168.64.5"),
		CHAddr:     testMAC,
		Type:       Ack,
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
	tests := []*Message{
		{Op: BootRequest, XID: 1, CHAddr: testMAC, Type: Discover, Broadcast: true, ParamRequest: ParamRequest(), MaxSize: 1500, Hostname: "vmbox"},
		{Op: BootRequest, XID: 2, CHAddr: testMAC, Type: Request, ServerID: a("10.0.2.2"), RequestedIP: a("10.0.2.15")},
		{Op: BootReply, XID: 3, CHAddr: testMAC, Type: Offer, YIAddr: a("10.0.2.15"), SIAddr: a("10.0.2.2"), ServerID: a("10.0.2.2"),
			LeaseTime: 24 * time.Hour, T1: time.Hour, T2: 2 * time.Hour, SubnetMask: a("255.255.255.0"),
			Routers: []netip.Addr{a("10.0.2.2")}, DNS: []netip.Addr{a("10.0.2.3")}, DomainName: "example.com"},
		{Op: BootReply, XID: 4, CHAddr: testMAC, Type: Nak, ServerID: a("10.0.2.2"), GIAddr: a("10.1.1.1"), CIAddr: a("10.0.2.16")},
	}
	for _, m := range tests {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < dhcpMinLen {
			t.Errorf("message %d is %d bytes, under BOOTP's minimum", m.XID, len(b))
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("message %d: %v", m.XID, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of message %d:\n got %+v\nwant %+v", m.XID, got, m)
		}
	}
}

func TestDHCPParseErrors(t *testing.T) {
	good, err := (&Message{Op: BootReply, XID: 9, CHAddr: testMAC, Type: Ack}).Marshal()
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
		_, err := Parse(tt.b)
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.errHas)
		}
	}
	if _, err := (&Message{CHAddr: make([]byte, 17)}).Marshal(); err == nil {
		t.Error("marshal of a 17-byte hardware address: no error")
	}
	if _, err := (&Message{CHAddr: testMAC, ServerID: netip.MustParseAddr("::1")}).Marshal(); err == nil {
		t.Error("marshal of an IPv6 server ID: no error")
	}
}
