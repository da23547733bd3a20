package portfwd

import (
	"context"
	"errors"
	"net"
	"time"
)

// StreamDialer opens streams to named targets at a Gateway (Target Proto
// "stream"), under the gateway's token.
type StreamDialer struct {
	// Dial connects to the gateway.
	Dial  func(ctx context.Context) (net.Conn, error)
	Token []byte
}

// HalfConn is a connection that can end its writing side alone: a
// stream's input ends with a half-close while its output still flows.
type HalfConn interface {
	net.Conn
	CloseWrite() error
}

// streamTimeout bounds connecting a stream through the gateway, which
// answers at once when its side is up.
const streamTimeout = 10 * time.Second

// Connect makes the connection that will carry a stream. Only one that
// can half-close will do: the end of a stream's input is a half-close
// (vz's vsock connections hide their socket and cannot).
func (d *StreamDialer) Connect(ctx context.Context) (HalfConn, error) {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	hc, ok := c.(HalfConn)
	if !ok {
		c.Close()
		return nil, errors.New("the gateway's connections cannot half-close")
	}
	return hc, nil
}

// Open names the stream's target on c, a connection from Connect, and
// returns c once the gateway has handed it over. On failure it closes c.
func (d *StreamDialer) Open(ctx context.Context, c HalfConn, name string) (HalfConn, error) {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	if _, err := DialThrough(ctx, c, d.Token, Target{Proto: "stream", Name: name}); err != nil {
		return nil, err
	}
	return c, nil
}

// DialStream opens a stream to name.
func (d *StreamDialer) DialStream(ctx context.Context, name string) (HalfConn, error) {
	c, err := d.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, c, name)
}
