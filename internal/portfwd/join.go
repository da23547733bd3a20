package portfwd

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// Join copies both ways between a and b until both directions end, then
// closes both. Any stream works: connections, SSH channels. A clean end of one direction (EOF) is passed on as a
// half-close, so a client that shuts its write side still reads the
// answer; an error in either direction closes both at once.
func Join(a, b io.ReadWriteCloser) {
	done := make(chan error, 2)
	go func() { done <- pass(a, b) }()
	go func() { done <- pass(b, a) }()
	if err := <-done; err != nil {
		a.Close()
		b.Close()
	}
	<-done
	a.Close()
	b.Close()
}

// pass copies src to dst and half-closes dst at src's EOF.
func pass(dst, src io.ReadWriteCloser) error {
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	// A stream that cannot half-close (vz's vsock connection hides its
	// socket) keeps the other direction going: a server that answers
	// before its client's EOF still works, and the end of that direction
	// closes both.
	return nil
}

// udpIdle is how long a UDP flow lives without a datagram either way, as
// a NAT table keeps it.
const udpIdle = 60 * time.Second

// maxDatagram is the largest UDP payload a frame carries.
const maxDatagram = 65535

// writeFrame writes one datagram as a frame.
func writeFrame(w io.Writer, p []byte) error {
	buf := make([]byte, 2+len(p))
	binary.BigEndian.PutUint16(buf, uint16(len(p)))
	copy(buf[2:], p)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame into buf (at least maxDatagram long) and
// returns the datagram.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// activity is the time of a flow's last datagram, shared by its two
// directions so that traffic one way keeps the other alive.
type activity struct{ last atomic.Int64 }

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// readIdle calls read with a deadline of udpIdle; a deadline reached while
// the other direction was busy is retried.
func (a *activity) readIdle(c interface{ SetReadDeadline(time.Time) error }, read func() error) error {
	for {
		c.SetReadDeadline(time.Now().Add(udpIdle))
		err := read()
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if time.Since(time.Unix(0, a.last.Load())) >= udpIdle {
			return err
		}
	}
}
