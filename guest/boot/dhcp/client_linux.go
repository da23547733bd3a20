package dhcp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/boot/dhcp/internal/wire"
)

// errNak is a DHCPNAK: the server refuses the address we asked for.
var errNak = errors.New("dhcp: server answered NAK")

// Client speaks DHCP on one interface through a UDP socket bound to
// port 68 and to the device (SO_BINDTODEVICE), so it works before the
// interface has an address: requests go to 255.255.255.255 with source
// 0.0.0.0, and the broadcast flag asks the server to broadcast its answers,
// which the kernel delivers to an unconfigured interface (a unicast answer
// to the not-yet-assigned address would be dropped). slirp always
// broadcasts; macOS's bootpd honours the flag. Renewals go unicast to the
// server from the leased address.
type Client struct {
	conn     *net.UDPConn
	mac      net.HardwareAddr
	hostname string
	// retry is the first retransmission interval; it doubles up to maxRetry.
	retry, maxRetry time.Duration
}

// NewClient opens the client's socket. The socket belongs to the
// calling thread's network namespace.
func NewClient(ifi *net.Interface, hostname string) (*Client, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("dhcp on %s: no Ethernet address", ifi.Name)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", wire.ClientPort))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", ifi.Name, err)
	}
	return &Client{
		conn:     pc.(*net.UDPConn),
		mac:      ifi.HardwareAddr,
		hostname: hostname,
		retry:    250 * time.Millisecond,
		maxRetry: 4 * time.Second,
	}, nil
}

func (c *Client) Close() error { return c.conn.Close() }

func newXID() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux ≥ 3.17; a fixed xid still works.
		return 0x766d6278
	}
	return binary.BigEndian.Uint32(b[:])
}

func (c *Client) base(typ uint8, xid uint32) *wire.Message {
	return &wire.Message{
		Op:           wire.BootRequest,
		XID:          xid,
		CHAddr:       c.mac,
		Type:         typ,
		Hostname:     c.hostname,
		ParamRequest: wire.ParamRequest(),
		MaxSize:      1500,
	}
}

var bcastAddr = &net.UDPAddr{IP: net.IPv4bcast, Port: wire.ServerPort}

// Acquire runs DISCOVER, OFFER, REQUEST, ACK until it has a lease or ctx
// ends. A NAK starts over.
func (c *Client) Acquire(ctx context.Context) (*Lease, error) {
	for {
		xid := newXID()
		d := c.base(wire.Discover, xid)
		d.Broadcast = true
		offer, err := c.exchange(ctx, d, bcastAddr, time.Time{})
		if err != nil {
			if errors.Is(err, errNak) {
				continue
			}
			return nil, err
		}
		if offer.Type != wire.Offer || !offer.YIAddr.IsValid() {
			continue
		}
		r := c.base(wire.Request, xid)
		r.Broadcast = true
		r.ServerID = offer.ServerID
		r.RequestedIP = offer.YIAddr
		ack, err := c.exchange(ctx, r, bcastAddr, time.Time{})
		if errors.Is(err, errNak) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return leaseFromAck(ack, time.Now())
	}
}

// Renew asks to extend l: unicast to its server (RENEWING) when
// broadcast is false, to everyone (REBINDING) otherwise, until deadline.
func (c *Client) Renew(ctx context.Context, l *Lease, broadcast bool, deadline time.Time) (*Lease, error) {
	r := c.base(wire.Request, newXID())
	r.CIAddr = l.Addr.Addr()
	dst := bcastAddr
	if !broadcast && l.Server.IsValid() {
		dst = &net.UDPAddr{IP: l.Server.AsSlice(), Port: wire.ServerPort}
	}
	ack, err := c.exchange(ctx, r, dst, deadline)
	if err != nil {
		return nil, err
	}
	return leaseFromAck(ack, time.Now())
}

// errDeadline means no answer came before the caller's deadline.
var errDeadline = errors.New("dhcp: no answer")

// exchange sends m to dst and waits for the matching OFFER or ACK (or
// NAK), retransmitting with exponential backoff until ctx ends or deadline
// (zero: none) passes.
func (c *Client) exchange(ctx context.Context, m *wire.Message, dst *net.UDPAddr, deadline time.Time) (*wire.Message, error) {
	pkt, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	want := uint8(wire.Ack)
	if m.Type == wire.Discover {
		want = wire.Offer
	}
	buf := make([]byte, 1500)
	interval := c.retry
	for {
		if _, err := c.conn.WriteToUDP(pkt, dst); err != nil {
			return nil, fmt.Errorf("dhcp send: %w", err)
		}
		wait := time.Now().Add(interval)
		if !deadline.IsZero() && deadline.Before(wait) {
			wait = deadline
		}
		if err := c.conn.SetReadDeadline(wait); err != nil {
			return nil, fmt.Errorf("dhcp: %w", err)
		}
		for {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("dhcp: %w", ctx.Err())
			}
			n, _, err := c.conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, fmt.Errorf("dhcp receive: %w", err)
			}
			r, err := wire.Parse(buf[:n])
			if err != nil || r.Op != wire.BootReply || r.XID != m.XID || !macEqual(r.CHAddr, c.mac) {
				continue // someone else's, or garbage
			}
			switch r.Type {
			case want:
				return r, nil
			case wire.Nak:
				return nil, errNak
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dhcp: %w", ctx.Err())
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, errDeadline
		}
		interval = min(2*interval, c.maxRetry)
	}
}

func macEqual(a, b net.HardwareAddr) bool { return string(a) == string(b) }

// Maintain keeps l alive until ctx ends: it renews at T1, rebinds at T2,
// and when the lease expires or is refused, starts over. apply is called
// with each new lease, and with nil when the address must be dropped.
func (c *Client) Maintain(ctx context.Context, l *Lease, apply func(*Lease)) {
	for {
		if !sleepUntil(ctx, l.Acquired.Add(l.T1)) {
			return
		}
		nl, err := c.Renew(ctx, l, false, l.Acquired.Add(l.T2))
		if errors.Is(err, errDeadline) {
			nl, err = c.Renew(ctx, l, true, l.Acquired.Add(l.Duration))
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			l = nl
			apply(l)
			continue
		}
		// Refused or expired: the address is no longer ours.
		apply(nil)
		nl, err = c.Acquire(ctx)
		if err != nil {
			return // only ctx ends Acquire
		}
		l = nl
		apply(l)
	}
}

// sleepUntil waits for t or ctx; it reports false if ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
