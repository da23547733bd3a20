package dhcp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/boot/dhcp/internal/wire"
)

func TestLeaseFromAck(t *testing.T) {
	a := netip.MustParseAddr
	now := time.Unix(1000, 0)
	tests := []struct {
		name   string
		m      wire.Message
		want   Lease
		errHas string
	}{
		{"defaults", wire.Message{Type: wire.Ack, YIAddr: a("10.0.2.15"), LeaseTime: time.Hour},
			Lease{Addr: netip.MustParsePrefix("10.0.2.15/24"), Duration: time.Hour, T1: 30 * time.Minute, T2: 3150 * time.Second, Acquired: now}, ""},
		{"full", wire.Message{Type: wire.Ack, YIAddr: a("192.168.64.7"), SubnetMask: a("255.255.255.128"), Routers: []netip.Addr{a("192.168.64.1"), a("192.168.64.2")},
			DNS: []netip.Addr{a("192.168.64.1")}, DomainName: "lan", ServerID: a("192.168.64.1"), LeaseTime: 100 * time.Second, T1: 10 * time.Second, T2: 20 * time.Second},
			Lease{Addr: netip.MustParsePrefix("192.168.64.7/25"), Router: a("192.168.64.1"), DNS: []netip.Addr{a("192.168.64.1")}, Domain: "lan",
				Server: a("192.168.64.1"), Duration: 100 * time.Second, T1: 10 * time.Second, T2: 20 * time.Second, Acquired: now}, ""},
		{"t2 before t1", wire.Message{Type: wire.Ack, YIAddr: a("10.0.0.2"), LeaseTime: 80 * time.Second, T1: 50 * time.Second, T2: 40 * time.Second},
			Lease{Addr: netip.MustParsePrefix("10.0.0.2/24"), Duration: 80 * time.Second, T1: 50 * time.Second, T2: 70 * time.Second, Acquired: now}, ""},
		{"no lease time", wire.Message{Type: wire.Ack, YIAddr: a("10.0.0.2")},
			Lease{Addr: netip.MustParsePrefix("10.0.0.2/24"), Duration: 0xffffffff * time.Second, T1: 0xffffffff * time.Second / 2, T2: 0xffffffff*time.Second - 0xffffffff*time.Second/8, Acquired: now}, ""},
		{"not an ack", wire.Message{Type: wire.Offer, YIAddr: a("10.0.0.2")}, Lease{}, "not an ACK"},
		{"no address", wire.Message{Type: wire.Ack}, Lease{}, "without an address"},
		{"bad mask", wire.Message{Type: wire.Ack, YIAddr: a("10.0.0.2"), SubnetMask: a("255.0.255.0")}, Lease{}, "not a prefix mask"},
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
