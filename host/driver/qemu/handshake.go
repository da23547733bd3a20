package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// Hello is resent while no ready has come, first after helloRetryFirst,
// then at doubling intervals up to helloRetryMax, at most helloResends
// times. During a slow boot the hellos queue up unread and reach the agent
// together, and its SSH server skips the extra ones before the version
// exchange, but Go's x/crypto/ssh skips at most 255 bytes of such lines:
// the limit keeps the queue well under that.
const (
	helloRetryFirst = 500 * time.Millisecond
	helloRetryMax   = 4 * time.Second
	helloResends    = 8
)

// handshake performs the virtio-serial greeting on c: it writes
// api.SerialHello and reads until api.SerialReady, discarding whatever came
// before it. The returned conn yields the bytes that followed the ready
// marker first (the agent may send its SSH banner in the same write).
//
// Hello is resent until ready arrives. Sending it once is not enough: the
// guest learns that a host client went away only if its read wakes up while
// the port is disconnected, and when the host reconnects quickly (under TCG
// the guest is slow to be scheduled) the guest sees no gap, so the new hello
// lands in its previous session and is consumed as data. That session then
// fails (an SSH server rejects it as a malformed packet) and the agent waits
// for a hello again; the resent one answers it. Duplicates are harmless:
// SSH ignores lines that are not a version string before the version
// exchange, on either side (RFC 4253 4.2), so the agent must merely skip
// hello lines at the start of a session, which Go's SSH server does.
//
// The ready marker is searched for anywhere in the stream, not only at a
// line start: what precedes it is leftover output of an earlier session
// and need not end in a newline.
//
// ctx bounds the whole exchange; the guest may still be booting.
func handshake(ctx context.Context, c net.Conn) (net.Conn, error) {
	return handshakeRetry(ctx, c, helloRetryFirst, helloRetryMax)
}

func handshakeRetry(ctx context.Context, c net.Conn, retry, retryMax time.Duration) (net.Conn, error) {
	deadline, hasDeadline := ctx.Deadline()
	// A cancelled ctx interrupts a blocked read or write through the deadline.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	fail := func(what string, err error) (net.Conn, error) {
		stop()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The socket's deadline can fire a moment before ctx's own timer.
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = ctxErr
			} else if hasDeadline {
				err = context.DeadlineExceeded
			}
		}
		return nil, fmt.Errorf("agent handshake: %s: %w", what, err)
	}
	// Reads wake up for each resend; writes are bounded by ctx alone (a
	// hello is tiny and the socket buffers it).
	setReadDeadline := func(t time.Time) error {
		if hasDeadline && (t.IsZero() || deadline.Before(t)) {
			t = deadline
		}
		if err := c.SetReadDeadline(t); err != nil {
			return err
		}
		// A cancellation that raced with the line above must not be
		// overwritten by it.
		if err := ctx.Err(); err != nil {
			c.SetDeadline(time.Unix(1, 0))
			return err
		}
		return nil
	}
	if hasDeadline {
		if err := c.SetWriteDeadline(deadline); err != nil {
			return fail("send hello", err)
		}
	}
	if err := setReadDeadline(time.Now().Add(retry)); err != nil {
		return fail("send hello", err)
	}
	if _, err := io.WriteString(c, api.SerialHello); err != nil {
		return fail("send hello", err)
	}
	ready := []byte(api.SerialReady)
	resends := 0
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := bytes.Index(buf, ready); i >= 0 {
			rest := bytes.Clone(buf[i+len(ready):])
			if !stop() {
				// ctx ended as the answer came: the deadline is now in the past.
				return nil, fmt.Errorf("agent handshake: %w", ctx.Err())
			}
			if err := c.SetDeadline(time.Time{}); err != nil {
				return nil, fmt.Errorf("agent handshake: %w", err)
			}
			return &prefixConn{Conn: c, pending: rest}, nil
		}
		// Keep only a tail that could still begin the marker, so that a
		// stream of leftovers cannot grow the buffer.
		if keep := len(ready) - 1; len(buf) > keep {
			buf = append(buf[:0], buf[len(buf)-keep:]...)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil &&
			(!hasDeadline || time.Now().Before(deadline)):
			retry = min(2*retry, retryMax)
			resend := resends < helloResends
			next := time.Now().Add(retry)
			if !resend {
				next = time.Time{} // only ctx ends the wait now
			}
			if err := setReadDeadline(next); err != nil {
				return fail("send hello", err)
			}
			if resend {
				resends++
				if _, err := io.WriteString(c, api.SerialHello); err != nil {
					return fail("send hello", err)
				}
			}
		case errors.Is(err, io.EOF):
			return fail("wait for ready", errors.New("connection closed before the agent was ready"))
		default:
			return fail("wait for ready", err)
		}
	}
}

// prefixConn is a net.Conn whose first reads return pending.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
