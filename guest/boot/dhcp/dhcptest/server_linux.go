package dhcptest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/boot/dhcp/internal/wire"
)

// Message types the server reports in Seen.
const (
	Discover = wire.Discover
	Request  = wire.Request
)

// Server is a one-address DHCP server. It refuses the first REQUEST with a
// NAK, so the client's restart path runs.
type Server struct {
	Addr   netip.Addr // the address it leases
	Self   netip.Addr // its own address: server ID, router and first DNS server
	Lease  time.Duration
	T1, T2 time.Duration
	// Renewed receives the client's address on each unicast renewal (if
	// there is room).
	Renewed chan netip.Addr

	conn  *net.UDPConn
	mu    sync.Mutex
	naked bool
	seen  []uint8 // message types received, in order
}

// Listen opens the server's socket on ifname, in the calling thread's
// network namespace.
func (s *Server) Listen(ifname string) error {
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
		return fmt.Errorf("dhcp test server on %s: %w", ifname, err)
	}
	s.conn = pc.(*net.UDPConn)
	return nil
}

// Close closes the socket, which ends Serve.
func (s *Server) Close() error { return s.conn.Close() }

// Seen returns the types of the messages received so far, in order.
func (s *Server) Seen() []uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint8(nil), s.seen...)
}

// Serve answers requests until the socket is closed, reporting what is
// wrong with them to t.
func (s *Server) Serve(t testing.TB) {
	buf := make([]byte, 1500)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		m, err := wire.Parse(buf[:n])
		if err != nil || m.Op != wire.BootRequest {
			t.Errorf("server got a bad request: %v", err)
			continue
		}
		s.mu.Lock()
		s.seen = append(s.seen, m.Type)
		nak := false
		if m.Type == wire.Request && !m.CIAddr.IsValid() && !s.naked {
			s.naked, nak = true, true
		}
		s.mu.Unlock()
		r := &wire.Message{Op: wire.BootReply, XID: m.XID, CHAddr: m.CHAddr, Broadcast: m.Broadcast, ServerID: s.Self}
		switch {
		case m.Type == wire.Discover:
			r.Type = wire.Offer
		case m.Type == wire.Request && nak:
			r.Type = wire.Nak
		case m.Type == wire.Request && (m.RequestedIP == s.Addr || m.CIAddr == s.Addr):
			r.Type = wire.Ack
		default:
			t.Errorf("server: unexpected request %+v", m)
			continue
		}
		if r.Type != wire.Nak {
			r.YIAddr = s.Addr
			r.SubnetMask = netip.MustParseAddr("255.255.255.0")
			r.Routers = []netip.Addr{s.Self}
			r.DNS = []netip.Addr{s.Self, netip.MustParseAddr("9.9.9.9")}
			r.DomainName = "test.internal"
			r.LeaseTime, r.T1, r.T2 = s.Lease, s.T1, s.T2
		}
		b, err := r.Marshal()
		if err != nil {
			t.Error(err)
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: wire.ClientPort}
		if m.CIAddr.IsValid() && !m.Broadcast {
			dst = &net.UDPAddr{IP: m.CIAddr.AsSlice(), Port: wire.ClientPort}
		}
		if _, err := s.conn.WriteToUDP(b, dst); err != nil {
			t.Errorf("server send: %v", err)
		}
		if m.CIAddr.IsValid() && r.Type == wire.Ack {
			select {
			case s.Renewed <- m.CIAddr:
			default:
			}
		}
	}
}
