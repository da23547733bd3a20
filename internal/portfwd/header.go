package portfwd

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Target is where a forwarded stream goes on the gateway's side: an
// address (Proto "tcp" or "udp"), or, for Proto "stream", a stream that
// the gateway's owner awaits under Name (see Rendezvous).
type Target struct {
	Proto string // "tcp", "udp" or "stream"
	Addr  netip.AddrPort
	Name  string // Proto "stream" only: 1 to maxName bytes
}

func (t Target) String() string {
	if t.Proto == "stream" {
		return "stream " + t.Name
	}
	return t.Addr.String() + "/" + t.Proto
}

// Dialer opens a stream that reaches t.
type Dialer func(ctx context.Context, t Target) (net.Conn, error)

const (
	headerVersion = 1
	protoTCP      = 1
	protoUDP      = 2
	protoStream   = 3
	maxToken      = 64
	maxName       = 64

	statusOK       = 0
	statusBadToken = 1
	statusDial     = 2
	statusBad      = 3
)

// handshakeTimeout bounds a stream's header and status: a peer that
// connects and says nothing must not hold a goroutine.
const handshakeTimeout = 10 * time.Second

// WriteHeader writes the header that opens a stream: version, token
// length, token, protocol, then address length, address and port, or, for
// a stream target, name length and name.
func WriteHeader(w io.Writer, token []byte, t Target) error {
	if len(token) == 0 || len(token) > maxToken {
		return fmt.Errorf("token of %d bytes: want 1 to %d", len(token), maxToken)
	}
	var proto byte
	switch t.Proto {
	case "tcp":
		proto = protoTCP
	case "udp":
		proto = protoUDP
	case "stream":
		if len(t.Name) == 0 || len(t.Name) > maxName {
			return fmt.Errorf("stream name of %d bytes: want 1 to %d", len(t.Name), maxName)
		}
		b := make([]byte, 0, 4+len(token)+len(t.Name))
		b = append(b, headerVersion, byte(len(token)))
		b = append(b, token...)
		b = append(b, protoStream, byte(len(t.Name)))
		b = append(b, t.Name...)
		_, err := w.Write(b)
		return err
	default:
		return fmt.Errorf("protocol %q: want tcp, udp or stream", t.Proto)
	}
	if !t.Addr.IsValid() {
		return errors.New("no target address")
	}
	addr := t.Addr.Addr().Unmap().AsSlice()
	b := make([]byte, 0, 6+len(token)+len(addr))
	b = append(b, headerVersion, byte(len(token)))
	b = append(b, token...)
	b = append(b, proto, byte(len(addr)))
	b = append(b, addr...)
	b = binary.BigEndian.AppendUint16(b, t.Addr.Port())
	_, err := w.Write(b)
	return err
}

// ReadHeader reads a header written by WriteHeader.
func ReadHeader(r io.Reader) (token []byte, t Target, err error) {
	var two [2]byte
	if _, err := io.ReadFull(r, two[:]); err != nil {
		return nil, t, fmt.Errorf("read header: %w", err)
	}
	if two[0] != headerVersion {
		return nil, t, fmt.Errorf("header version %d: want %d", two[0], headerVersion)
	}
	if two[1] == 0 || two[1] > maxToken {
		return nil, t, fmt.Errorf("token of %d bytes: want 1 to %d", two[1], maxToken)
	}
	token = make([]byte, two[1])
	if _, err := io.ReadFull(r, token); err != nil {
		return nil, t, fmt.Errorf("read token: %w", err)
	}
	if _, err := io.ReadFull(r, two[:]); err != nil {
		return nil, t, fmt.Errorf("read header: %w", err)
	}
	switch two[0] {
	case protoTCP:
		t.Proto = "tcp"
	case protoUDP:
		t.Proto = "udp"
	case protoStream:
		if two[1] == 0 || two[1] > maxName {
			return nil, t, fmt.Errorf("stream name of %d bytes: want 1 to %d", two[1], maxName)
		}
		name := make([]byte, two[1])
		if _, err := io.ReadFull(r, name); err != nil {
			return nil, t, fmt.Errorf("read stream name: %w", err)
		}
		return token, Target{Proto: "stream", Name: string(name)}, nil
	default:
		return nil, t, fmt.Errorf("protocol %d: want tcp, udp or stream", two[0])
	}
	if two[1] != 4 && two[1] != 16 {
		return nil, t, fmt.Errorf("address of %d bytes: want 4 or 16", two[1])
	}
	rest := make([]byte, int(two[1])+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		return nil, t, fmt.Errorf("read address: %w", err)
	}
	addr, _ := netip.AddrFromSlice(rest[:two[1]])
	t.Addr = netip.AddrPortFrom(addr, binary.BigEndian.Uint16(rest[two[1]:]))
	return token, t, nil
}

// DialThrough opens a stream on conn to t: it writes the header and waits
// for the gateway's status. On failure it closes conn.
func DialThrough(ctx context.Context, conn net.Conn, token []byte, t Target) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := WriteHeader(conn, token, t); err != nil {
		conn.Close()
		return nil, fmt.Errorf("forward to %s: %w", t, err)
	}
	var status [2]byte
	if _, err := io.ReadFull(conn, status[:1]); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("forward to %s: %w", t, ctx.Err())
		}
		return nil, fmt.Errorf("forward to %s: no answer from the gateway: %w", t, err)
	}
	if status[0] != statusOK {
		conn.Close()
		switch status[0] {
		case statusBadToken:
			return nil, fmt.Errorf("forward to %s: the gateway refused the token", t)
		case statusDial:
			if t.Proto == "stream" {
				return nil, fmt.Errorf("forward to %s: nothing awaits it", t)
			}
			return nil, fmt.Errorf("forward to %s: the gateway could not connect", t)
		default:
			return nil, fmt.Errorf("forward to %s: the gateway refused the header", t)
		}
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("forward to %s: %w", t, ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// tokenMatches compares in constant time: the token is the only thing
// that keeps another local user off the gateway.
func tokenMatches(got, want []byte) bool {
	return len(want) > 0 && subtle.ConstantTimeCompare(got, want) == 1
}
