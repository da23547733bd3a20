package netlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	sizeofNlmsghdr = 16
	sizeofIfinfo   = 16
	sizeofIfaddr   = 8
	sizeofRtmsg    = 12
	sizeofRtattr   = 4
)

// Route protocols: who set a route, shown by ip route as its "proto", so
// that a lease's route can be told from a static one.
const (
	ProtoBoot = unix.RTPROT_BOOT
	ProtoDHCP = 16 // RTPROT_DHCP, not in x/sys/unix
)

var nativeEndian = binary.NativeEndian

// nlAlign rounds n up to netlink's 4-byte alignment.
func nlAlign(n int) int { return (n + 3) &^ 3 }

// nlMessage builds one netlink message: header, fixed body, attributes.
type nlMessage struct {
	typ   uint16
	flags uint16
	body  []byte
	attrs []byte
}

func (m *nlMessage) addAttr(typ uint16, data []byte) {
	l := sizeofRtattr + len(data)
	a := make([]byte, nlAlign(l))
	nativeEndian.PutUint16(a[0:], uint16(l))
	nativeEndian.PutUint16(a[2:], typ)
	copy(a[sizeofRtattr:], data)
	m.attrs = append(m.attrs, a...)
}

func (m *nlMessage) addAttrU32(typ uint16, v uint32) {
	b := make([]byte, 4)
	nativeEndian.PutUint32(b, v)
	m.addAttr(typ, b)
}

// encode returns the message with its header, carrying seq.
func (m *nlMessage) encode(seq uint32) []byte {
	n := sizeofNlmsghdr + nlAlign(len(m.body)) + len(m.attrs)
	b := make([]byte, n)
	nativeEndian.PutUint32(b[0:], uint32(n))
	nativeEndian.PutUint16(b[4:], m.typ)
	nativeEndian.PutUint16(b[6:], m.flags)
	nativeEndian.PutUint32(b[8:], seq)
	nativeEndian.PutUint32(b[12:], 0) // port ID: the kernel's
	copy(b[sizeofNlmsghdr:], m.body)
	copy(b[sizeofNlmsghdr+nlAlign(len(m.body)):], m.attrs)
	return b
}

// linkUpMsg sets IFF_UP on the link with the given index.
func linkUpMsg(index int) *nlMessage {
	body := make([]byte, sizeofIfinfo)
	body[0] = unix.AF_UNSPEC
	nativeEndian.PutUint32(body[4:], uint32(int32(index)))
	nativeEndian.PutUint32(body[8:], unix.IFF_UP)  // flags
	nativeEndian.PutUint32(body[12:], unix.IFF_UP) // change mask
	return &nlMessage{typ: unix.RTM_NEWLINK, flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, body: body}
}

// addrMsg adds (RTM_NEWADDR, replacing an existing equal address) or
// removes (RTM_DELADDR) an IPv4 address on a link.
func addrMsg(typ uint16, index int, p netip.Prefix) *nlMessage {
	body := make([]byte, sizeofIfaddr)
	body[0] = unix.AF_INET
	body[1] = byte(p.Bits())
	body[3] = unix.RT_SCOPE_UNIVERSE
	nativeEndian.PutUint32(body[4:], uint32(index))
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if typ == unix.RTM_NEWADDR {
		flags |= unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	m := &nlMessage{typ: typ, flags: flags, body: body}
	a := p.Addr().As4()
	m.addAttr(unix.IFA_LOCAL, a[:])
	m.addAttr(unix.IFA_ADDRESS, a[:])
	if p.Bits() < 31 {
		bc := broadcast(p)
		m.addAttr(unix.IFA_BROADCAST, bc[:])
	}
	return m
}

func broadcast(p netip.Prefix) [4]byte {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	var out [4]byte
	binary.BigEndian.PutUint32(out[:], v)
	return out
}

// defaultRouteMsg adds (replacing any) or deletes the IPv4 default route
// via gw out of the link with the given index.
func defaultRouteMsg(typ uint16, index int, gw netip.Addr, proto uint8) *nlMessage {
	body := make([]byte, sizeofRtmsg)
	body[0] = unix.AF_INET
	body[4] = unix.RT_TABLE_MAIN
	body[5] = proto
	body[6] = unix.RT_SCOPE_UNIVERSE
	body[7] = unix.RTN_UNICAST
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if typ == unix.RTM_NEWROUTE {
		flags |= unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	m := &nlMessage{typ: typ, flags: flags, body: body}
	g := gw.As4()
	m.addAttr(unix.RTA_GATEWAY, g[:])
	m.addAttrU32(unix.RTA_OIF, uint32(index))
	return m
}

// Conn is a NETLINK_ROUTE socket. The socket belongs to the network
// namespace of the thread that opened it, whatever thread uses it later.
type Conn struct {
	mu  sync.Mutex
	fd  int
	seq uint32
}

func Open() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A lost ack must not hang boot forever.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	return &Conn{fd: fd}, nil
}

func (r *Conn) Close() error { return unix.Close(r.fd) }

// do sends m and waits for the kernel's acknowledgement.
func (r *Conn) do(m *nlMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	seq := r.seq
	if err := unix.Sendto(r.fd, m.encode(seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 16384)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		done, err := parseAck(buf[:n], seq)
		if done {
			return err
		}
	}
}

// parseAck looks for the NLMSG_ERROR answering seq in a datagram. It
// reports whether it found it and the error it carries (nil for an ack).
func parseAck(b []byte, seq uint32) (bool, error) {
	for len(b) >= sizeofNlmsghdr {
		l := int(nativeEndian.Uint32(b[0:]))
		if l < sizeofNlmsghdr || l > len(b) {
			return true, fmt.Errorf("netlink: malformed message of length %d", l)
		}
		typ := nativeEndian.Uint16(b[4:])
		mseq := nativeEndian.Uint32(b[8:])
		if typ == unix.NLMSG_ERROR && mseq == seq {
			if l < sizeofNlmsghdr+4 {
				return true, errors.New("netlink: short error message")
			}
			if e := int32(nativeEndian.Uint32(b[sizeofNlmsghdr:])); e != 0 {
				return true, unix.Errno(-e)
			}
			return true, nil
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return false, nil
}

// LinkUp sets the named link up.
func (r *Conn) LinkUp(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := r.do(linkUpMsg(ifi.Index)); err != nil {
		return fmt.Errorf("set link %s up: %w", name, err)
	}
	return nil
}

// AddAddr adds an IPv4 address to a link (no error if it is already there).
func (r *Conn) AddAddr(index int, p netip.Prefix) error {
	if err := r.do(addrMsg(unix.RTM_NEWADDR, index, p)); err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

// DelAddr removes an IPv4 address from a link (no error if it is gone).
func (r *Conn) DelAddr(index int, p netip.Prefix) error {
	err := r.do(addrMsg(unix.RTM_DELADDR, index, p))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete address %s: %w", p, err)
	}
	return nil
}

// SetDefaultRoute adds or replaces the IPv4 default route.
func (r *Conn) SetDefaultRoute(index int, gw netip.Addr, proto uint8) error {
	if err := r.do(defaultRouteMsg(unix.RTM_NEWROUTE, index, gw, proto)); err != nil {
		return fmt.Errorf("set default route via %s: %w", gw, err)
	}
	return nil
}

// WaitLink polls until the named link exists (a NIC appears asynchronously
// after its driver loads) and returns it.
func WaitLink(ctx context.Context, name string) (*net.Interface, error) {
	delay := 2 * time.Millisecond
	for {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			return ifi, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for network interface %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
