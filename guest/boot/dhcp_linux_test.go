//go:build linux

package boot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// testDHCPServer is a one-address DHCP server for the round-trip test. It
// refuses the first REQUEST with a NAK, so the client's restart path runs.
type testDHCPServer struct {
	conn    *net.UDPConn
	addr    netip.Addr // the address it leases
	self    netip.Addr
	lease   time.Duration
	t1, t2  time.Duration
	mu      sync.Mutex
	naked   bool
	seen    []uint8 // message types received, in order
	renewed chan netip.Addr
}

func listenTestDHCPServer(ifname string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func (s *testDHCPServer) serve(t *testing.T) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		m, err := parseDHCP(buf[:n])
		if err != nil || m.Op != bootRequest {
			t.Errorf("server got a bad request: %v", err)
			continue
		}
		s.mu.Lock()
		s.seen = append(s.seen, m.Type)
		nak := false
		if m.Type == dhcpRequest && !m.CIAddr.IsValid() && !s.naked {
			s.naked, nak = true, true
		}
		s.mu.Unlock()
		r := &dhcpMessage{Op: bootReply, XID: m.XID, CHAddr: m.CHAddr, Broadcast: m.Broadcast, ServerID: s.self}
		switch {
		case m.Type == dhcpDiscover:
			r.Type = dhcpOffer
		case m.Type == dhcpRequest && nak:
			r.Type = dhcpNak
		case m.Type == dhcpRequest && (m.RequestedIP == s.addr || m.CIAddr == s.addr):
			r.Type = dhcpAck
		default:
			t.Errorf("server: unexpected request %+v", m)
			continue
		}
		if r.Type != dhcpNak {
			r.YIAddr = s.addr
			r.SubnetMask = netip.MustParseAddr("255.255.255.0")
			r.Routers = []netip.Addr{s.self}
			r.DNS = []netip.Addr{s.self, netip.MustParseAddr("9.9.9.9")}
			r.DomainName = "test.internal"
			r.LeaseTime, r.T1, r.T2 = s.lease, s.t1, s.t2
		}
		b, err := r.marshal()
		if err != nil {
			t.Error(err)
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpClientPort}
		if m.CIAddr.IsValid() && !m.Broadcast {
			dst = &net.UDPAddr{IP: m.CIAddr.AsSlice(), Port: dhcpClientPort}
		}
		if _, err := s.conn.WriteToUDP(b, dst); err != nil {
			t.Errorf("server send: %v", err)
		}
		if m.CIAddr.IsValid() && r.Type == dhcpAck {
			select {
			case s.renewed <- m.CIAddr:
			default:
			}
		}
	}
}

// TestDHCPRoundTrip runs the real client (setupNetwork in DHCP mode)
// against a DHCP server across a veth pair between two network namespaces:
// NAK handling, the lease applied with netlink, the resolver files, and a
// unicast renewal at T1.
func TestDHCPClientRoundTrip(t *testing.T) {
	srvNS, cliNS := newNetns(t), newNetns(t)
	ipCmd(t, "-n", srvNS, "link", "add", "vsrv", "type", "veth", "peer", "name", "vcli", "netns", cliNS)
	ipCmd(t, "-n", srvNS, "addr", "add", "192.168.77.1/24", "dev", "vsrv")
	ipCmd(t, "-n", srvNS, "link", "set", "vsrv", "up")

	srv := &testDHCPServer{
		addr:    netip.MustParseAddr("192.168.77.50"),
		self:    netip.MustParseAddr("192.168.77.1"),
		lease:   6 * time.Second,
		t1:      1 * time.Second,
		t2:      5 * time.Second,
		renewed: make(chan netip.Addr, 1),
	}
	inNetns(t, srvNS, func() {
		var err error
		if srv.conn, err = listenTestDHCPServer("vsrv"); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	go srv.serve(t)
	defer srv.conn.Close()

	etc := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bg, stop := context.WithCancel(ctx)
	defer stop()
	var n *network
	inNetns(t, cliNS, func() {
		var err error
		// Renewal outlives this function by a moment: log to stderr, not t.
		logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "dhcp client: "+f+"\n", a...) }
		n, err = setupNetwork(ctx, bg, vmconfig.Network{Mode: vmconfig.NetworkDHCP, Interface: "vcli"}, "dhcpbox", etc, &Timings{}, logf)
		if err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	first := n.State()
	if first.Addr.String() != "192.168.77.50/24" || first.Gateway != srv.self || len(first.DNS) != 2 || first.Lease == nil || first.Lease.Server != srv.self {
		t.Fatalf("state after DHCP = %+v", first)
	}
	srv.mu.Lock()
	seen := append([]uint8(nil), srv.seen...)
	srv.mu.Unlock()
	// DISCOVER, REQUEST (NAK), DISCOVER, REQUEST (ACK); retransmissions
	// (the first packets may leave before the link is up) repeat a type.
	if got := slices.Compact(seen); len(got) < 4 || got[0] != dhcpDiscover || got[1] != dhcpRequest || got[2] != dhcpDiscover || got[3] != dhcpRequest {
		t.Errorf("server saw message types %v", seen)
	}
	checkFile(t, filepath.Join(etc, "resolv.conf"), "# written by vmbox\nsearch test.internal\nnameserver 192.168.77.1\nnameserver 9.9.9.9\n")
	checkFile(t, filepath.Join(etc, "hosts"), "# written by vmbox\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tdhcpbox\n192.168.77.1\thost.vmbox.internal\n")
	if out := ipCmd(t, "-n", cliNS, "-4", "-o", "addr", "show", "dev", "vcli"); !strings.Contains(out, "inet 192.168.77.50/24") {
		t.Errorf("client address: %s", out)
	}
	if out := ipCmd(t, "-n", cliNS, "-d", "route", "show", "default"); !strings.Contains(out, "default via 192.168.77.1 dev vcli proto dhcp") {
		t.Errorf("client default route: %s", out)
	}

	// The renewal is a unicast REQUEST from the leased address at T1.
	select {
	case from := <-srv.renewed:
		if from != srv.addr {
			t.Errorf("renewal from %s", from)
		}
	case <-ctx.Done():
		t.Fatal("no renewal before the test's time limit")
	}
	// The renewed lease is applied right after the ACK; wait for it.
	for n.State().Lease == nil || !n.State().Lease.Acquired.After(first.Lease.Acquired) {
		select {
		case <-ctx.Done():
			t.Fatal("renewed lease never applied")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := n.State().Addr; got != first.Addr {
		t.Errorf("address after renewal: %s", got)
	}
}
