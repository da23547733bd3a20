package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	// dnsTTL is the TTL of the answers about containers, Docker's.
	dnsTTL = 600
	// forwardTimeout bounds one upstream exchange; a stub resolver gives
	// up after 5s, so two upstreams can be tried within it.
	forwardTimeout = 2 * time.Second
	// maxUpstreams is how many nameservers of resolv.conf are tried, as
	// glibc does.
	maxUpstreams = 3
	// shutdownTimeout bounds stopping a DNS server.
	shutdownTimeout = 5 * time.Second
)

// resolver answers the DNS queries of one user network's containers: the
// names of the containers on the networks the asking one is on (this one
// first), everything else from upstream.
type resolver struct {
	netName  string // lower case
	subnet   netip.Prefix
	internal bool
	fwd      *forwarder
	peers    *peerIndex
	log      *slog.Logger

	mu    sync.RWMutex
	names map[string][]netip.Addr // lower-case name → addresses, in order of connection
	ptr   map[netip.Addr]string   // address → "name.network."
}

func newResolver(netName string, subnet netip.Prefix, internal bool, fwd *forwarder, peers *peerIndex, log *slog.Logger) *resolver {
	return &resolver{
		netName: strings.ToLower(netName), subnet: subnet, internal: internal, fwd: fwd, peers: peers, log: log,
		names: map[string][]netip.Addr{}, ptr: map[netip.Addr]string{},
	}
}

// add registers names for addr; the first one is the container's name,
// which its address resolves back to.
func (r *resolver) add(addr netip.Addr, names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		k := strings.ToLower(n)
		if !slices.Contains(r.names[k], addr) {
			r.names[k] = append(r.names[k], addr)
		}
	}
	if len(names) > 0 {
		r.ptr[addr] = dns.Fqdn(names[0] + "." + r.netName)
	}
}

func (r *resolver) remove(addr netip.Addr, names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		k := strings.ToLower(n)
		r.names[k] = slices.DeleteFunc(r.names[k], func(a netip.Addr) bool { return a == addr })
		if len(r.names[k]) == 0 {
			delete(r.names, k)
		}
	}
	delete(r.ptr, addr)
}

// lookup returns the addresses of name (lower case, no trailing dot) on
// this network: a known name as is, or followed by the network's name or
// by one of the search domains, which a stub resolver appends.
func (r *resolver) lookup(name string, search []string) ([]netip.Addr, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if a, ok := r.names[name]; ok {
		return slices.Clone(a), true
	}
	for _, s := range append([]string{r.netName}, search...) {
		s = strings.TrimSuffix(strings.ToLower(s), ".")
		if base, ok := strings.CutSuffix(name, "."+s); ok && base != "" {
			if a, ok := r.names[base]; ok {
				return slices.Clone(a), true
			}
		}
	}
	return nil, false
}

// resolvers are the networks whose names client sees: this one, then the
// other user networks of client's container, as Docker resolves across
// all of a container's networks.
func (r *resolver) resolvers(client netip.Addr) []*resolver {
	out := []*resolver{r}
	for _, p := range r.peers.of(client) {
		if p != r {
			out = append(out, p)
		}
	}
	return out
}

// resolve looks name up on the networks client sees.
func (r *resolver) resolve(name string, client netip.Addr) ([]netip.Addr, bool) {
	nets := r.resolvers(client)
	var search []string
	if strings.Contains(name, ".") {
		if rc, err := readResolvConf(r.fwd.resolvConf); err == nil {
			search = rc.search
		}
	}
	for _, n := range nets {
		if a, ok := n.lookup(name, search); ok {
			return a, true
		}
	}
	return nil, false
}

// resolveAddr finds the name of addr on the networks client sees.
func (r *resolver) resolveAddr(addr, client netip.Addr) (string, bool) {
	for _, n := range r.resolvers(client) {
		if name, ok := n.reverse(addr); ok {
			return name, true
		}
	}
	return "", false
}

func (r *resolver) reverse(addr netip.Addr) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	name, ok := r.ptr[addr]
	return name, ok
}

// ServeDNS answers one query.
func (r *resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	reply := r.answer(q, w.RemoteAddr())
	if reply == nil {
		return
	}
	if w.RemoteAddr().Network() == "udp" {
		// Many containers under one alias outgrow a datagram: send what
		// fits, flagged truncated, for the client to ask again over TCP.
		size := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil {
			size = max(size, int(opt.UDPSize()))
		}
		reply.Truncate(size)
	}
	_ = w.WriteMsg(reply)
}

// answer builds the reply to q from client; nil sends none.
func (r *resolver) answer(q *dns.Msg, client net.Addr) *dns.Msg {
	if q.Response {
		return nil
	}
	reply := new(dns.Msg)
	if len(q.Question) != 1 || q.Opcode != dns.OpcodeQuery {
		reply.SetRcode(q, dns.RcodeFormatError)
		reply.RecursionAvailable = true
		return reply
	}
	// The server listens on the gateway, which every container of the VM
	// reaches: only this network's containers may learn its names.
	from := addrPortOf(client).Addr().Unmap()
	if !r.subnet.Contains(from) {
		reply.SetRcode(q, dns.RcodeRefused)
		reply.RecursionAvailable = true
		return reply
	}
	question := q.Question[0]
	name := strings.TrimSuffix(strings.ToLower(question.Name), ".")
	if question.Qclass == dns.ClassINET {
		switch question.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			if addrs, ok := r.resolve(name, from); ok {
				reply.SetReply(q)
				reply.RecursionAvailable = true
				if question.Qtype == dns.TypeA {
					for _, a := range addrs {
						reply.Answer = append(reply.Answer, &dns.A{
							Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL},
							A:   net.IP(a.AsSlice()),
						})
					}
				}
				// AAAA: the name exists, without an IPv6 address.
				return reply
			}
		case dns.TypePTR:
			if a, ok := parseReverse(name); ok {
				if target, ok := r.resolveAddr(a, from); ok {
					reply.SetReply(q)
					reply.RecursionAvailable = true
					reply.Answer = append(reply.Answer, &dns.PTR{
						Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: dnsTTL},
						Ptr: target,
					})
					return reply
				}
			}
		}
	}
	if r.internal {
		// An internal network has no way out, DNS included.
		reply.SetRcode(q, dns.RcodeServerFailure)
		reply.RecursionAvailable = true
		return reply
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxUpstreams*forwardTimeout)
	defer cancel()
	resp, err := r.fwd.forward(ctx, q, client.Network())
	if err != nil {
		r.log.Debug("DNS forward failed", "network", r.netName, "name", question.Name, "err", err)
		reply.SetRcode(q, dns.RcodeServerFailure)
		reply.RecursionAvailable = true
		return reply
	}
	resp.Id = q.Id
	resp.RecursionAvailable = true
	return resp
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// parseReverse reads the IPv4 address of an in-addr.arpa name (lower
// case, no trailing dot).
func parseReverse(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(labels)
	a, err := netip.ParseAddr(strings.Join(labels, "."))
	return a, err == nil && a.Is4()
}

// peerIndex knows which user networks each container is on, for their
// resolvers to see each other's names. It has its own lock because the
// DNS servers read it while the Manager changes endpoints.
type peerIndex struct {
	mu    sync.RWMutex
	owner map[netip.Addr]string  // an endpoint's address → its container's ID
	nets  map[string][]*resolver // container ID → its networks' resolvers, in joining order
}

func newPeerIndex() *peerIndex {
	return &peerIndex{owner: map[netip.Addr]string{}, nets: map[string][]*resolver{}}
}

func (x *peerIndex) add(container string, addr netip.Addr, r *resolver) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.owner[addr] = container
	x.nets[container] = append(x.nets[container], r)
}

func (x *peerIndex) remove(container string, addr netip.Addr, r *resolver) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.owner, addr)
	x.nets[container] = slices.DeleteFunc(x.nets[container], func(o *resolver) bool { return o == r })
	if len(x.nets[container]) == 0 {
		delete(x.nets, container)
	}
}

// of returns the resolvers of the networks of the container at addr.
func (x *peerIndex) of(addr netip.Addr) []*resolver {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.nets[x.owner[addr]])
}

// forwarder sends queries the networks cannot answer to the VM's
// nameservers.
type forwarder struct {
	resolvConf string
	timeout    time.Duration
	// ours are the networks' subnets: a nameserver there is one of our
	// own servers, or a container, and asking it could loop.
	ours atomic.Pointer[[]netip.Prefix]
}

// forward asks the upstream nameservers in turn over proto ("udp" or
// "tcp") and returns the first answer.
func (f *forwarder) forward(ctx context.Context, q *dns.Msg, proto string) (*dns.Msg, error) {
	rc, err := readResolvConf(f.resolvConf)
	if err != nil {
		return nil, err
	}
	var ours []netip.Prefix
	if p := f.ours.Load(); p != nil {
		ours = *p
	}
	var errs []error
	tried := 0
	for _, s := range rc.nameservers {
		if slices.ContainsFunc(ours, func(p netip.Prefix) bool { return p.Contains(s.Unmap()) }) {
			continue
		}
		if tried == maxUpstreams {
			break
		}
		tried++
		c := &dns.Client{Net: proto, Timeout: f.timeout}
		if proto != "tcp" {
			c.Net = "udp"
			// Whatever size the client can take, the upstream may use.
			c.UDPSize = dns.MaxMsgSize
		}
		resp, _, err := c.ExchangeContext(ctx, q.Copy(), net.JoinHostPort(s.String(), "53"))
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s, err))
		if ctx.Err() != nil {
			break
		}
	}
	if tried == 0 {
		return nil, fmt.Errorf("no upstream nameserver in %s", f.resolvConf)
	}
	return nil, errors.Join(errs...)
}

type resolvConf struct {
	nameservers []netip.Addr
	search      []string
}

func readResolvConf(path string) (resolvConf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return resolvConf{}, fmt.Errorf("resolver configuration: %w", err)
	}
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.nameservers = append(rc.nameservers, a)
			}
		case "search", "domain":
			rc.search = f[1:]
		}
	}
	return rc, nil
}

// dnsServer is a resolver listening on its network's gateway, port 53.
type dnsServer struct {
	udp, tcp *dns.Server
}

// startDNS starts n's server unless it runs. A failure (port 53 taken on
// the gateway address) costs the containers their names, not their
// network: it is logged, and tried again at the next connect. Call with
// the Manager locked.
func (m *Manager) startDNS(n *netState) {
	if n.res == nil || n.dns != nil || !n.up {
		return
	}
	s, err := listenDNS(netip.AddrPortFrom(n.Gateway, 53), n.res)
	if err != nil {
		m.log.Warn("embedded DNS server", "network", n.Name, "err", err)
		return
	}
	n.dns = s
}

func (m *Manager) stopDNS(n *netState) {
	if n.dns == nil {
		return
	}
	n.dns.stop()
	n.dns = nil
}

func listenDNS(at netip.AddrPort, h dns.Handler) (*dnsServer, error) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
	if err != nil {
		return nil, fmt.Errorf("listen on %s/udp: %w", at, err)
	}
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(at))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("listen on %s/tcp: %w", at, err)
	}
	s := &dnsServer{
		udp: &dns.Server{PacketConn: pc, Handler: h},
		tcp: &dns.Server{Listener: l, Handler: h},
	}
	if err := serve(s.udp); err != nil {
		pc.Close()
		l.Close()
		return nil, fmt.Errorf("serve DNS on %s/udp: %w", at, err)
	}
	if err := serve(s.tcp); err != nil {
		s.stop()
		l.Close()
		return nil, fmt.Errorf("serve DNS on %s/tcp: %w", at, err)
	}
	return s, nil
}

// serve runs srv in the background once it has started, so that it can
// be shut down from then on.
func serve(srv *dns.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-errc:
		return err
	}
}

func (s *dnsServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		// A server that did not start has nothing to shut down.
		_ = srv.ShutdownContext(ctx)
	}
}
