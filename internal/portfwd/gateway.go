package portfwd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Gateway is the far end of forwarded streams: it serves streams whose
// header carries Token by dialing their target.
type Gateway struct {
	Token []byte
	// Dial reaches a target; nil dials directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Awaited, when set, takes streams to stream targets: it returns
	// take, which owns the stream from then on, or false when nothing
	// awaits name. Without it, stream targets are refused.
	Awaited func(name string) (take func(net.Conn), ok bool)
	Log     *slog.Logger
}

// dialTimeout bounds the gateway's connect to a target, which answers at
// once or not at all (a container's address inside the VM).
const dialTimeout = 10 * time.Second

// Serve accepts streams on l until ctx ends or l fails, and closes l.
func (g *Gateway) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.ServeConn(ctx, c)
		}()
	}
}

// ServeConn serves one stream and closes it.
func (g *Gateway) ServeConn(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	token, t, err := ReadHeader(c)
	if err != nil {
		g.log().Debug("forwarded stream", "err", err)
		c.Write([]byte{statusBad})
		c.Close()
		return
	}
	if !tokenMatches(token, g.Token) {
		g.log().Warn("forwarded stream with a wrong token", "remote", c.RemoteAddr())
		c.Write([]byte{statusBadToken})
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	if t.Proto == "stream" {
		g.handOver(c, t.Name)
		return
	}
	dial := g.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	target, err := dial(dctx, t.Proto, t.Addr.String())
	dcancel()
	if err != nil {
		g.log().Debug("forwarded stream", "target", t, "err", err)
		c.Write([]byte{statusDial})
		c.Close()
		return
	}
	if _, err := c.Write([]byte{statusOK}); err != nil {
		target.Close()
		c.Close()
		return
	}
	if t.Proto == "tcp" {
		Join(c, target)
		return
	}
	serveUDPFlow(c, target)
}

// handOver gives a stream to what awaits name, after telling the client
// that it is taken.
func (g *Gateway) handOver(c net.Conn, name string) {
	var take func(net.Conn)
	ok := false
	if g.Awaited != nil {
		take, ok = g.Awaited(name)
	}
	if !ok {
		g.log().Debug("forwarded stream nothing awaits", "name", name)
		c.Write([]byte{statusDial})
		c.Close()
		return
	}
	if _, err := c.Write([]byte{statusOK}); err != nil {
		// The awaiting side learns from the closed stream at once
		// instead of waiting for one that will not come.
		c.Close()
	}
	take(c)
}

// serveUDPFlow passes frames from the stream to the connected UDP socket
// and datagrams back as frames until the flow is idle for udpIdle or
// either side ends.
func serveUDPFlow(stream, sock net.Conn) {
	defer stream.Close()
	defer sock.Close()
	var idle activity
	idle.touch()
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, maxDatagram+2)
		for {
			p, err := readFrame(stream, buf)
			if err != nil {
				return
			}
			idle.touch()
			if _, err := sock.Write(p); err != nil && !isRefused(err) {
				return
			}
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, maxDatagram)
		for {
			var n int
			err := idle.readIdle(sock, func() (err error) {
				n, err = sock.Read(buf)
				return err
			})
			if err != nil {
				if isRefused(err) {
					continue // an ICMP port unreachable; the service may come
				}
				return
			}
			idle.touch()
			if err := writeFrame(stream, buf[:n]); err != nil {
				return
			}
		}
	}()
	<-done
	stream.Close()
	sock.Close()
	<-done
}

func (g *Gateway) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}
