package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vmbox/vmbox/guest/api"
)

// Forwarder listens on this machine's addresses for published ports and
// carries what arrives to the targets through its Dialer.
type Forwarder struct {
	dial   Dialer
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	pubs   map[string]*publication
	closed bool

	listeners atomic.Int64
	conns     atomic.Int64
}

// Stats counts what a Forwarder holds open, for leak checks.
type Stats struct {
	Listeners int // TCP listeners and UDP sockets
	Conns     int // forwarded TCP connections and UDP flows
}

// NewForwarder returns a Forwarder that reaches targets with dial.
func NewForwarder(dial Dialer, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{dial: dial, log: log, ctx: ctx, cancel: cancel, pubs: map[string]*publication{}}
}

// publication is one key's listeners and the connections they took.
type publication struct {
	ports  []api.PortBinding
	ctx    context.Context
	cancel context.CancelFunc
	socks  []io.Closer
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Publish listens for every binding of ports under key, forwarding to
// ip:ContainerPort, and returns the bindings with each HostPort 0
// replaced by the port taken. It binds all or nothing: on failure nothing
// stays bound and the error is one line, in Docker's words when the port
// is taken. A key published before is replaced.
//
// An empty HostIP listens on 127.0.0.1 and, where the host has it, ::1:
// never on every interface unless asked for with "0.0.0.0" or "::".
func (f *Forwarder) Publish(key string, ip netip.Addr, ports []api.PortBinding) ([]api.PortBinding, error) {
	if !ip.IsValid() && len(ports) > 0 {
		return nil, errors.New("publish: no container address to forward to")
	}
	f.Unpublish(key)
	p := &publication{conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(f.ctx)
	type bound struct {
		sock   io.Closer
		target Target
	}
	var all []bound
	fail := func(err error) ([]api.PortBinding, error) {
		for _, b := range all {
			b.sock.Close()
		}
		p.cancel()
		return nil, err
	}
	out := make([]api.PortBinding, 0, len(ports))
	for _, b := range ports {
		socks, port, err := listen(b)
		if err != nil {
			return fail(err)
		}
		target := Target{Proto: b.Proto, Addr: netip.AddrPortFrom(ip, b.ContainerPort)}
		for _, s := range socks {
			all = append(all, bound{s, target})
		}
		b.HostPort = port
		out = append(out, b)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fail(errors.New("publish: the forwarder is closed"))
	}
	if old := f.pubs[key]; old != nil {
		// A concurrent Publish of the same key won: keep the later one.
		delete(f.pubs, key)
		defer f.release(old)
	}
	p.ports = out
	f.pubs[key] = p
	for _, b := range all {
		p.socks = append(p.socks, b.sock)
		f.listeners.Add(1)
		p.wg.Add(1)
		switch s := b.sock.(type) {
		case net.Listener:
			go f.serveTCP(p, s, b.target)
		case net.PacketConn:
			go f.serveUDP(p, s, b.target)
		}
	}
	f.mu.Unlock()
	f.log.Debug("published", "key", key, "ports", out)
	return slices.Clone(out), nil
}

// Unpublish closes key's listeners and the connections they took; an
// unknown key is ignored.
func (f *Forwarder) Unpublish(key string) {
	f.mu.Lock()
	p := f.pubs[key]
	delete(f.pubs, key)
	f.mu.Unlock()
	if p != nil {
		f.release(p)
	}
}

// UnpublishAll unpublishes every key, as when the VM whose containers
// they served has gone; the Forwarder stays usable.
func (f *Forwarder) UnpublishAll() {
	f.mu.Lock()
	pubs := f.pubs
	f.pubs = map[string]*publication{}
	f.mu.Unlock()
	for _, p := range pubs {
		f.release(p)
	}
}

// Published returns key's bindings as Publish returned them.
func (f *Forwarder) Published(key string) []api.PortBinding {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pubs[key]; p != nil {
		return slices.Clone(p.ports)
	}
	return nil
}

// Stats reports what is open now.
func (f *Forwarder) Stats() Stats {
	return Stats{Listeners: int(f.listeners.Load()), Conns: int(f.conns.Load())}
}

// Close unpublishes everything; later Publish calls fail.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.UnpublishAll()
	f.cancel()
	return nil
}

func (f *Forwarder) release(p *publication) {
	p.cancel()
	for _, s := range p.socks {
		s.Close()
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers conns to be closed by release; it reports false, having
// closed them, when the publication is already gone.
func (p *publication) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *publication) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (f *Forwarder) serveTCP(p *publication, l net.Listener, t Target) {
	defer p.wg.Done()
	defer f.listeners.Add(-1)
	for {
		c, err := l.Accept()
		if err != nil {
			if p.ctx.Err() == nil {
				f.log.Warn("published port stopped accepting", "addr", l.Addr(), "err", err)
			}
			return
		}
		p.wg.Add(1)
		f.conns.Add(1)
		go func() {
			defer p.wg.Done()
			defer f.conns.Add(-1)
			f.forwardTCP(p, c, t)
		}()
	}
}

func (f *Forwarder) forwardTCP(p *publication, c net.Conn, t Target) {
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	s, err := f.dial(ctx, t)
	cancel()
	if err != nil {
		f.log.Debug("forward", "from", c.RemoteAddr(), "to", t, "err", err)
		c.Close()
		return
	}
	if !p.track(s) {
		c.Close()
		return
	}
	defer p.untrack(s)
	Join(c, s)
}

// udpFlow is the stream that carries one client's datagrams.
type udpFlow struct {
	queue chan []byte
	done  chan struct{} // closed when the flow has ended
}

// udpQueue is how many datagrams wait for a flow's stream before more
// are dropped, as a full socket buffer would.
const udpQueue = 256

func (f *Forwarder) serveUDP(p *publication, pc net.PacketConn, t Target) {
	defer p.wg.Done()
	defer f.listeners.Add(-1)
	var mu sync.Mutex
	flows := map[string]*udpFlow{}
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			if isRefused(err) {
				continue
			}
			f.log.Warn("published UDP port stopped reading", "addr", pc.LocalAddr(), "err", err)
			return
		}
		key := from.String()
		mu.Lock()
		fl := flows[key]
		if fl == nil {
			fl = &udpFlow{queue: make(chan []byte, udpQueue), done: make(chan struct{})}
			flows[key] = fl
			p.wg.Add(1)
			f.conns.Add(1)
			go func() {
				defer p.wg.Done()
				defer f.conns.Add(-1)
				f.forwardUDP(p, pc, from, t, fl)
				mu.Lock()
				if flows[key] == fl {
					delete(flows, key)
				}
				mu.Unlock()
			}()
		}
		mu.Unlock()
		select {
		case fl.queue <- slices.Clone(buf[:n]):
		default: // the stream is behind: drop, as UDP may
		}
	}
}

func (f *Forwarder) forwardUDP(p *publication, pc net.PacketConn, client net.Addr, t Target, fl *udpFlow) {
	defer close(fl.done)
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	s, err := f.dial(ctx, t)
	cancel()
	if err != nil {
		f.log.Debug("forward", "from", client, "to", t, "err", err)
		return
	}
	if !p.track(s) {
		return
	}
	defer p.untrack(s)
	defer s.Close()
	replies := make(chan struct{})
	go func() {
		defer close(replies)
		buf := make([]byte, maxDatagram+2)
		for {
			d, err := readFrame(s, buf)
			if err != nil {
				return // the gateway ended the idle flow, or the VM went
			}
			if _, err := pc.WriteTo(d, client); err != nil {
				return
			}
		}
	}()
	for {
		select {
		case d := <-fl.queue:
			if err := writeFrame(s, d); err != nil {
				s.Close()
				<-replies
				return
			}
		case <-replies:
			return
		case <-p.ctx.Done():
			s.Close()
			<-replies
			return
		}
	}
}

// listen binds b on its host address (127.0.0.1 and ::1 for an empty
// one) and returns the sockets and the port taken.
func listen(b api.PortBinding) ([]io.Closer, uint16, error) {
	if b.Proto != "tcp" && b.Proto != "udp" {
		return nil, 0, fmt.Errorf("publish %s: protocol must be tcp or udp", b.Key())
	}
	if b.HostIP != "" {
		ip, err := netip.ParseAddr(b.HostIP)
		if err != nil {
			return nil, 0, fmt.Errorf("publish %s: invalid host IP %q", b.Key(), b.HostIP)
		}
		s, port, err := listenOne(b.Proto, netip.AddrPortFrom(ip, b.HostPort))
		if err != nil {
			return nil, 0, err
		}
		return []io.Closer{s}, port, nil
	}
	v4 := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	// A free port on 127.0.0.1 may be taken on ::1: try a few.
	for attempt := 0; ; attempt++ {
		s, port, err := listenOne(b.Proto, netip.AddrPortFrom(v4, b.HostPort))
		if err != nil {
			return nil, 0, err
		}
		s6, _, err := listenOne(b.Proto, netip.AddrPortFrom(netip.IPv6Loopback(), port))
		switch {
		case err == nil:
			return []io.Closer{s, s6}, port, nil
		case errors.Is(err, errUnavailable):
			return []io.Closer{s}, port, nil
		case b.HostPort == 0 && attempt < 8:
			s.Close()
		default:
			s.Close()
			return nil, 0, err
		}
	}
}

var errUnavailable = errors.New("address unavailable")

func listenOne(proto string, addr netip.AddrPort) (io.Closer, uint16, error) {
	var s io.Closer
	var port uint16
	var err error
	// One family per address, as Docker binds: 0.0.0.0 is IPv4's every
	// address, not a dual-stack [::] that also takes IPv6.
	family := "4"
	if addr.Addr().Is6() {
		family = "6"
	}
	switch proto {
	case "tcp":
		var l net.Listener
		if l, err = net.Listen("tcp"+family, addr.String()); err == nil {
			s, port = l, l.Addr().(*net.TCPAddr).AddrPort().Port()
		}
	default:
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp"+family, addr.String()); err == nil {
			s, port = pc, pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		}
	}
	switch {
	case err == nil:
		return s, port, nil
	case isAddrInUse(err):
		return nil, 0, fmt.Errorf("Bind for %s failed: port is already allocated", addr)
	case isAddrUnavailable(err):
		return nil, 0, fmt.Errorf("Bind for %s failed: %w", addr, errUnavailable)
	default:
		return nil, 0, fmt.Errorf("Bind for %s failed: %w", addr, unwrapOp(err))
	}
}

// unwrapOp drops net.OpError's "listen tcp 1.2.3.4:80:" prefix, which
// repeats the address the message already names.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
