package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vmbox/vmbox/guest/api"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func openManager(t *testing.T, root, resolvConf string) *Manager {
	t.Helper()
	m, err := New(context.Background(), Options{Root: root, ResolvConf: resolvConf, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPersistence needs no privileges: nothing here touches the kernel
// but to read the interfaces' addresses.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	m := openManager(t, root, "")
	list := m.List()
	if len(list) != 3 {
		t.Fatalf("a new Manager lists %v", list)
	}
	br, err := m.Get("bridge")
	if err != nil || !br.Predefined || br.Subnet.String() != "172.17.0.0/16" || br.Gateway.String() != "172.17.0.1" || br.Bridge != "vmbox0" || len(br.ID) != 64 {
		t.Fatalf("bridge: %+v, %v", br, err)
	}
	for name, driver := range map[string]string{"host": DriverHost, "none": DriverNull} {
		if n, err := m.Get(name); err != nil || n.Driver != driver || !n.Predefined {
			t.Errorf("%s: %+v, %v", name, n, err)
		}
	}
	if _, err := New(ctx, Options{Root: root}); !errors.Is(err, ErrConflict) {
		t.Errorf("a second Manager on the same directory: %v", err)
	}
	front, err := m.Create(ctx, api.NetworkCreateArgs{Name: "front", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if front.Subnet.Bits() != 16 && front.Subnet.Bits() != 20 || front.Gateway != front.Subnet.Addr().Next() || front.Bridge != "br-"+front.ID[:12] {
		t.Errorf("front: %+v", front)
	}
	back, err := m.Create(ctx, api.NetworkCreateArgs{Name: "back", Subnet: "10.77.0.0/24", Gateway: "10.77.0.254", IPRange: "10.77.0.128/25", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if front.Subnet.Overlaps(back.Subnet) {
		t.Errorf("overlap: %v %v", front.Subnet, back.Subnet)
	}
	for _, tc := range []struct {
		args api.NetworkCreateArgs
		kind error
		text string
	}{
		{api.NetworkCreateArgs{Name: "front"}, ErrConflict, "network with name front already exists"},
		{api.NetworkCreateArgs{Name: "bridge"}, ErrInvalid, "reserved"},
		{api.NetworkCreateArgs{Name: "bad name"}, ErrInvalid, "invalid network name"},
		{api.NetworkCreateArgs{Name: "overlap", Subnet: front.Subnet.String()}, ErrInvalid, "Pool overlaps with other one on this address space"},
		{api.NetworkCreateArgs{Name: "overlap", Subnet: "10.77.0.0/16"}, ErrInvalid, "Pool overlaps with other one on this address space"},
		{api.NetworkCreateArgs{Name: "overlap", Subnet: "172.17.5.0/24"}, ErrInvalid, "Pool overlaps with other one on this address space"},
	} {
		_, err := m.Create(ctx, tc.args)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("create %+v: %v; want %v with %q", tc.args, err, tc.kind, tc.text)
		}
	}
	if err := m.Remove(ctx, "bridge"); !errors.Is(err, ErrForbidden) || err.Error() != "bridge is a pre-defined network and cannot be removed" {
		t.Errorf("remove bridge: %v", err)
	}
	if err := m.Remove(ctx, "nosuch"); !errors.Is(err, ErrNotFound) || err.Error() != "network nosuch not found" {
		t.Errorf("remove unknown: %v", err)
	}
	if n, err := m.Get(front.ID[:10]); err != nil || n.ID != front.ID {
		t.Errorf("by ID prefix: %v, %v", n.Name, err)
	}
	if n, err := m.Get(front.ID); err != nil || n.Name != "front" {
		t.Errorf("by ID: %v, %v", n.Name, err)
	}
	if _, err := m.Get(""); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty ref: %v", err)
	}
	r, err := m.Resource("back")
	if err != nil {
		t.Fatal(err)
	}
	if r.Driver != "bridge" || r.Scope != "local" || !r.Internal || len(r.IPAM.Config) != 1 || r.IPAM.Config[0] != (api.IPAMConfig{Subnet: "10.77.0.0/24", IPRange: "10.77.0.128/25", Gateway: "10.77.0.254"}) || r.Containers == nil {
		t.Errorf("resource: %+v", r)
	}
	if r, err := m.Resource("host"); err != nil || r.Driver != "host" || r.IPAM.Config == nil || len(r.IPAM.Config) != 0 {
		t.Errorf("host resource: %+v, %v", r, err)
	}
	// A mutated copy does not change the network.
	front.Labels["a"] = "changed"
	if n, _ := m.Get("front"); n.Labels["a"] != "b" {
		t.Error("Create returned the Manager's own map")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, api.NetworkCreateArgs{Name: "late"}); !errors.Is(err, ErrClosed) {
		t.Errorf("create after close: %v", err)
	}

	// What a crash may leave, and a file that is not a network.
	if err := os.WriteFile(filepath.Join(root, tmpPrefix+"x.json-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, strings.Repeat("ab", 32)+".json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := openManager(t, root, "")
	defer m2.Close()
	if got := len(m2.List()); got != 5 {
		t.Errorf("reopened: %d networks", got)
	}
	for _, want := range []Network{br, front, back} {
		got, err := m2.Get(want.Name)
		if err != nil || got.ID != want.ID || got.Subnet != want.Subnet || got.Gateway != want.Gateway ||
			got.IPRange != want.IPRange || got.Internal != want.Internal || got.Bridge != want.Bridge || !got.Created.Equal(want.Created) {
			t.Errorf("reopened %s: %+v, %v; want %+v", want.Name, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, tmpPrefix+"x.json-123")); !os.IsNotExist(err) {
		t.Errorf("leftover temporary file: %v", err)
	}
	names, err := m2.Prune(ctx)
	if err != nil || !slices.Equal(names, []string{"back", "front"}) {
		t.Errorf("prune: %v, %v", names, err)
	}
	if _, err := os.Stat(filepath.Join(root, front.ID+".json")); !os.IsNotExist(err) {
		t.Errorf("pruned network's file: %v", err)
	}
	if got := len(m2.List()); got != 3 {
		t.Errorf("after prune: %d networks", got)
	}
}

// world is what lies outside the VM: a host at 10.0.2.2 and a nameserver
// at 10.0.2.3 behind the VM's uplink 10.0.2.15/24, as on QEMU's user
// network.
type world struct {
	h          *holder
	resolvConf string
	queries    chan string // names the upstream nameserver was asked
}

var (
	worldHost = "10.0.2.2:8080"
	worldDNS  = netip.MustParseAddr("10.0.2.3")
	uplinkIP  = netip.MustParseAddr("10.0.2.15")
)

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{h: newHolder(t), queries: make(chan string, 100)}
	ns, err := netns.GetFromPath(w.h.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	up := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "ext", PeerNamespace: netlink.NsFd(int(ns))}
	if err := netlink.LinkAdd(up); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteLink("uplink") })
	link, err := netlink.LinkByName("uplink")
	if err != nil {
		t.Fatal(err)
	}
	must(t, netlink.AddrAdd(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(uplinkIP, 24))}))
	must(t, netlink.LinkSetUp(link))
	must(t, netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IPv4(10, 0, 2, 2), Family: netlink.FAMILY_V4}))
	h := handleIn(t, w.h.ns)
	ext, err := h.LinkByName("ext")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.2.2/24", "10.0.2.3/24"} {
		must(t, h.AddrAdd(ext, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(a))}))
	}
	must(t, h.LinkSetUp(ext))
	lo, _ := h.LinkByName("lo")
	must(t, h.LinkSetUp(lo))
	listenIn(t, w.h.ns, worldHost)

	// The upstream nameserver knows example.test and nothing else.
	handler := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		reply := new(dns.Msg)
		reply.SetReply(q)
		w.queries <- q.Question[0].Name
		if strings.EqualFold(q.Question[0].Name, "example.test.") && q.Question[0].Qtype == dns.TypeA {
			reply.Answer = append(reply.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(10, 11, 12, 13),
			})
		} else {
			reply.Rcode = dns.RcodeNameError
		}
		_ = rw.WriteMsg(reply)
	})
	var pc net.PacketConn
	var l net.Listener
	must(t, inNS(t, w.h.ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", "10.0.2.3:53"); err != nil {
			return err
		}
		l, err = net.Listen("tcp4", "10.0.2.3:53")
		return err
	}))
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		must(t, serve(srv))
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	w.resolvConf = filepath.Join(t.TempDir(), "resolv.conf")
	// A nameserver on a container network must be skipped.
	rc := "nameserver 172.18.0.9\nnameserver " + worldDNS.String() + "\nsearch corp.example\n"
	must(t, os.WriteFile(w.resolvConf, []byte(rc), 0o644))
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// container is a process in a network namespace of its own, on networks.
type container struct {
	*holder
	id, name string
}

func newContainer(t *testing.T, name string) *container {
	return &container{holder: newHolder(t), id: newID(), name: name}
}

func (c *container) connect(t *testing.T, m *Manager, network string, cfg EndpointConfig) Endpoint {
	t.Helper()
	cfg.ContainerID, cfg.ContainerName, cfg.NetNS = c.id, c.name, c.ns
	if cfg.Interface == "" {
		cfg.Interface = "eth0"
	}
	ep, err := m.Connect(context.Background(), network, cfg)
	if err != nil {
		t.Fatalf("connect %s to %s: %v", c.name, network, err)
	}
	return ep
}

func (c *container) query(t *testing.T, server netip.Addr, name string, qtype uint16, proto string) (*dns.Msg, error) {
	t.Helper()
	var resp *dns.Msg
	err := inNS(t, c.ns, func() error {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		cl := &dns.Client{Net: proto, Timeout: 3 * time.Second}
		var err error
		resp, _, err = cl.Exchange(q, net.JoinHostPort(server.String(), "53"))
		if err == nil && resp.Id != q.Id {
			err = fmt.Errorf("reply ID %d to query %d", resp.Id, q.Id)
		}
		return err
	})
	return resp, err
}

// blocked checks that a connection from the namespace at path to addr
// is dropped on its way: it times out, where a closed port would refuse it.
func blocked(t *testing.T, path, addr string) error {
	t.Helper()
	_, err := dialFrom(t, path, addr, time.Second)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return fmt.Errorf("connected")
	}
	return fmt.Errorf("not dropped: %w", err)
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

func answersA(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// masqueradeRules reads the vmbox table's masquerade rules back from the
// kernel as "SUBNET !BRIDGE".
func masqueradeRules(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
	rules, err := c.GetRules(table, &nftables.Chain{Name: nftPostrouting, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		var subnet, bridge string
		ones, masq := 0, false
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Cmp:
				if len(e.Data) == 4 {
					subnet = netip.AddrFrom4([4]byte(e.Data)).String()
				} else if e.Op == expr.CmpOpNeq {
					bridge = "!" + string(bytes.TrimRight(e.Data, "\x00"))
				}
			case *expr.Bitwise:
				ones, _ = net.IPMask(e.Mask).Size()
			case *expr.Masq:
				masq = true
			}
		}
		if masq {
			out = append(out, fmt.Sprintf("%s/%d %s", subnet, ones, bridge))
		}
	}
	slices.Sort(out)
	return out
}

func TestBridgeNetworking(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	w := newWorld(t)
	root := t.TempDir()
	m := openManager(t, root, w.resolvConf)
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()

	front, err := m.Create(ctx, api.NetworkCreateArgs{Name: "front"})
	must(t, err)
	back, err := m.Create(ctx, api.NetworkCreateArgs{Name: "back"})
	must(t, err)
	if front.Subnet.String() != "172.18.0.0/16" || back.Subnet.String() != "172.19.0.0/16" {
		t.Fatalf("subnets %v %v", front.Subnet, back.Subnet)
	}
	if _, err := m.Create(ctx, api.NetworkCreateArgs{Name: "vm", Subnet: "10.0.0.0/16"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "interface uplink") {
		t.Errorf("a subnet over the VM's uplink: %v", err)
	}
	if linkExists(front.Bridge) {
		t.Error("Create made the bridge; it should wait for the first container")
	}

	a, b, c := newContainer(t, "a"), newContainer(t, "b"), newContainer(t, "c")
	epA := a.connect(t, m, "front", EndpointConfig{Aliases: []string{"web"}, DefaultRoute: true})
	epB := b.connect(t, m, "front", EndpointConfig{DefaultRoute: true})
	epC := c.connect(t, m, "back", EndpointConfig{DefaultRoute: true})
	listenIn(t, a.ns, ":80")
	listenIn(t, c.ns, ":81")

	t.Run("endpoints", func(t *testing.T) {
		if epA.Addr.String() != "172.18.0.2/16" || epB.Addr.String() != "172.18.0.3/16" || epC.Addr.String() != "172.19.0.2/16" {
			t.Errorf("addresses %v %v %v", epA.Addr, epB.Addr, epC.Addr)
		}
		if epA.MAC.String() != "02:42:ac:12:00:02" || epA.Gateway.String() != "172.18.0.1" || epA.NetworkID != front.ID || epA.NetworkName != "front" {
			t.Errorf("endpoint %+v", epA)
		}
		if !slices.Equal(epA.DNSNames, []string{"a", "web", a.id[:12]}) {
			t.Errorf("DNS names %v", epA.DNSNames)
		}
		h := handleIn(t, a.ns)
		link, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if link.Attrs().HardwareAddr.String() != "02:42:ac:12:00:02" || link.Attrs().OperState == netlink.OperDown {
			t.Errorf("eth0: %+v", link.Attrs())
		}
		routes, err := h.RouteList(link, netlink.FAMILY_V4)
		must(t, err)
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return isDefault(r) && r.Gw.Equal(net.IPv4(172, 18, 0, 1)) }) {
			t.Errorf("no default route via the gateway: %v", routes)
		}
		host, err := netlink.LinkByName(epA.HostVeth)
		if err != nil {
			t.Fatal(err)
		}
		br, err := netlink.LinkByName(front.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if host.Attrs().MasterIndex != br.Attrs().Index || !strings.HasPrefix(epA.HostVeth, "veth") {
			t.Errorf("host side %s not on %s", epA.HostVeth, front.Bridge)
		}
		if got := m.Endpoints(a.id); len(got) != 1 || got[0].ID != epA.ID {
			t.Errorf("Endpoints: %+v", got)
		}
		r, err := m.Resource("front")
		must(t, err)
		if got := r.Containers[a.id]; got.Name != "a" || got.IPv4Address != "172.18.0.2/16" || got.MacAddress != "02:42:ac:12:00:02" || got.EndpointID != epA.ID || len(r.Containers) != 2 {
			t.Errorf("resource containers %+v", r.Containers)
		}
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil || strings.TrimSpace(string(b)) != "1" {
			t.Errorf("ip_forward %q, %v", b, err)
		}
	})

	t.Run("same network connects", func(t *testing.T) {
		seen, err := dialFrom(t, b.ns, "172.18.0.2:80", 3*time.Second)
		if err != nil || seen != epB.Addr.Addr() {
			t.Errorf("b to a: %v, seen as %v", err, seen)
		}
	})

	t.Run("other network is isolated", func(t *testing.T) {
		if err := blocked(t, c.ns, "172.18.0.2:80"); err != nil {
			t.Errorf("c on back to a on front: %v", err)
		}
		if err := blocked(t, a.ns, "172.19.0.2:81"); err != nil {
			t.Errorf("a on front to c on back: %v", err)
		}
	})

	t.Run("outbound is masqueraded", func(t *testing.T) {
		for _, ct := range []*container{a, c} {
			seen, err := dialFrom(t, ct.ns, worldHost, 3*time.Second)
			if err != nil || seen != uplinkIP {
				t.Errorf("%s to the world: %v, seen as %v; want %v", ct.name, err, seen, uplinkIP)
			}
		}
		got := masqueradeRules(t)
		want := []string{"172.18.0.0/16 !" + front.Bridge, "172.19.0.0/16 !" + back.Bridge}
		if !slices.Equal(got, want) {
			t.Errorf("masquerade rules %q, want %q", got, want)
		}
	})

	t.Run("dns", func(t *testing.T) {
		gw := front.Gateway
		for _, name := range []string{"a.", "web.", "WEB.", a.id[:12] + ".", "a.front.", "a.corp.example."} {
			for _, proto := range []string{"udp", "tcp"} {
				resp, err := b.query(t, gw, name, dns.TypeA, proto)
				if err != nil || resp.Rcode != dns.RcodeSuccess || !resp.RecursionAvailable || !slices.Equal(answersA(resp), []string{"172.18.0.2"}) {
					t.Errorf("%s over %s: %v %v", name, proto, resp, err)
				}
			}
		}
		resp, err := a.query(t, gw, "b.", dns.TypeAAAA, "udp")
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Errorf("AAAA of a container: %v %v", resp, err)
		}
		resp, err = a.query(t, gw, "3.0.18.172.in-addr.arpa.", dns.TypePTR, "udp")
		if err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.PTR).Ptr != "b.front." {
			t.Errorf("PTR of b: %v %v", resp, err)
		}
		// c is on back: front's names are not back's.
		resp, err = c.query(t, back.Gateway, "a.", dns.TypeA, "udp")
		if err != nil || resp.Rcode != dns.RcodeNameError || len(resp.Answer) != 0 {
			t.Errorf("a from back: %v %v", resp, err)
		}
		if got := <-w.queries; got != "a." {
			t.Errorf("upstream asked %q", got)
		}
		resp, err = c.query(t, front.Gateway, "a.", dns.TypeA, "udp")
		if err != nil || resp.Rcode != dns.RcodeRefused {
			t.Errorf("back's container asking front's server: %v %v", resp, err)
		}
		// a joins back too (without its front alias, which is front's):
		// it sees back's names through front's server, and back sees it.
		epA2 := a.connect(t, m, "back", EndpointConfig{Interface: "eth1"})
		resp, err = a.query(t, gw, "c.", dns.TypeA, "udp")
		if err != nil || !slices.Equal(answersA(resp), []string{epC.Addr.Addr().String()}) {
			t.Errorf("a on two networks resolving c: %v %v", resp, err)
		}
		if resp, err := c.query(t, back.Gateway, "a.", dns.TypeA, "udp"); err != nil || !slices.Equal(answersA(resp), []string{epA2.Addr.Addr().String()}) {
			t.Errorf("c resolving a on back: %v %v", resp, err)
		}
		if eps := m.Endpoints(a.id); len(eps) != 2 || eps[0].NetworkName != "front" || eps[1].NetworkName != "back" || eps[1].Interface != "eth1" {
			t.Errorf("a's endpoints: %+v", eps)
		}
		must(t, m.Disconnect(ctx, "back", a.id))
		if linkExists(epA2.HostVeth) {
			t.Error("disconnect left the veth")
		}
		if l, err := handleIn(t, a.ns).LinkByName("eth1"); err == nil {
			t.Errorf("disconnect left eth1 in the container: %v", l.Attrs().Name)
		}
		for _, proto := range []string{"udp", "tcp"} {
			resp, err = a.query(t, gw, "example.test.", dns.TypeA, proto)
			if err != nil || resp.Rcode != dns.RcodeSuccess || !resp.RecursionAvailable || !slices.Equal(answersA(resp), []string{"10.11.12.13"}) {
				t.Errorf("forwarded over %s: %v %v", proto, resp, err)
			}
			<-w.queries
		}
		// The upstream is gone: SERVFAIL.
		must(t, os.WriteFile(w.resolvConf, []byte("nameserver 10.0.2.99\n"), 0o644))
		start := time.Now()
		resp, err = a.query(t, gw, "example.test.", dns.TypeA, "udp")
		if err != nil || resp.Rcode != dns.RcodeServerFailure {
			t.Errorf("upstream down: %v %v", resp, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("SERVFAIL took %v", d)
		}
		must(t, os.WriteFile(w.resolvConf, []byte("nameserver "+worldDNS.String()+"\n"), 0o644))
	})

	t.Run("errors", func(t *testing.T) {
		if _, err := m.Connect(ctx, "front", EndpointConfig{ContainerID: a.id, ContainerName: "a", NetNS: a.ns, Interface: "eth1"}); !errors.Is(err, ErrConflict) || err.Error() != "endpoint with name a already exists in network front" {
			t.Errorf("second connect: %v", err)
		}
		d := newContainer(t, "d")
		for _, tc := range []struct {
			ip   string
			kind error
		}{{"172.18.0.2", ErrConflict}, {"172.18.0.1", ErrInvalid}, {"10.1.1.1", ErrInvalid}} {
			_, err := m.Connect(ctx, "front", EndpointConfig{ContainerID: d.id, ContainerName: "d", NetNS: d.ns, Interface: "eth0", IPv4: netip.MustParseAddr(tc.ip)})
			if !errors.Is(err, tc.kind) {
				t.Errorf("static %s: %v, want %v", tc.ip, err, tc.kind)
			}
		}
		if _, err := m.Connect(ctx, "bridge", EndpointConfig{ContainerID: d.id, NetNS: d.ns, IPv4: netip.MustParseAddr("172.17.0.9")}); !errors.Is(err, ErrInvalid) {
			t.Errorf("static address on the default bridge: %v", err)
		}
		if _, err := m.Connect(ctx, "host", EndpointConfig{ContainerID: d.id, NetNS: d.ns}); !errors.Is(err, ErrInvalid) {
			t.Errorf("connect to host: %v", err)
		}
		if _, err := m.Connect(ctx, "nosuch", EndpointConfig{ContainerID: d.id, NetNS: d.ns}); !errors.Is(err, ErrNotFound) {
			t.Errorf("connect to unknown: %v", err)
		}
		if _, err := m.Connect(ctx, "front", EndpointConfig{ContainerID: d.id, NetNS: "/nonexistent"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad namespace: %v", err)
		}
		if got := m.Endpoints(d.id); len(got) != 0 {
			t.Errorf("failed connects left endpoints %+v", got)
		}
		err := m.Remove(ctx, "front")
		if !errors.Is(err, ErrInUse) || err.Error() != "error while removing network: network front id "+front.ID+" has active endpoints" {
			t.Errorf("remove in use: %v", err)
		}
		if names, err := m.Prune(ctx); err != nil || len(names) != 0 {
			t.Errorf("prune with every network in use: %v %v", names, err)
		}
		if err := m.Disconnect(ctx, "front", d.id); !errors.Is(err, ErrNotFound) {
			t.Errorf("disconnect unknown: %v", err)
		}
		// A static address, then the next free one skips it.
		epD := d.connect(t, m, "front", EndpointConfig{IPv4: netip.MustParseAddr("172.18.0.4")})
		e := newContainer(t, "e")
		epE := e.connect(t, m, "front", EndpointConfig{})
		if epD.Addr.String() != "172.18.0.4/16" || epE.Addr.String() != "172.18.0.5/16" {
			t.Errorf("static then dynamic: %v %v", epD.Addr, epE.Addr)
		}
		must(t, m.Disconnect(ctx, "front", d.id))
		must(t, m.Disconnect(ctx, "front", e.id))
	})

	t.Run("reuse after disconnect", func(t *testing.T) {
		must(t, m.Disconnect(ctx, "front", b.id))
		if linkExists(epB.HostVeth) {
			t.Error("b's veth survived its disconnect")
		}
		if resp, err := a.query(t, front.Gateway, "b.", dns.TypeA, "udp"); err != nil || len(resp.Answer) != 0 {
			t.Errorf("b still resolves: %v %v", resp, err)
		}
		<-w.queries
		f := newContainer(t, "f")
		epF := f.connect(t, m, front.ID[:12], EndpointConfig{})
		if epF.Addr != epB.Addr || epF.MAC.String() != epB.MAC.String() {
			t.Errorf("freed address not reused: %v, b had %v", epF.Addr, epB.Addr)
		}
		// A container whose namespace is gone: its veth went with it.
		c.kill()
		must(t, m.Disconnect(ctx, "back", c.id))
		e := newContainer(t, "g")
		if ep := e.connect(t, m, "back", EndpointConfig{}); ep.Addr != epC.Addr {
			t.Errorf("address of the dead container not reused: %v", ep.Addr)
		}
	})

	t.Run("default bridge", func(t *testing.T) {
		h := newContainer(t, "h")
		ep := h.connect(t, m, "bridge", EndpointConfig{DefaultRoute: true})
		if ep.Addr.String() != "172.17.0.2/16" || ep.Gateway.String() != "172.17.0.1" || ep.DNSNames != nil {
			t.Errorf("default bridge endpoint %+v", ep)
		}
		if l, err := netlink.LinkByName("vmbox0"); err != nil || l.Type() != "bridge" {
			t.Errorf("vmbox0: %v", err)
		}
		seen, err := dialFrom(t, h.ns, worldHost, 3*time.Second)
		if err != nil || seen != uplinkIP {
			t.Errorf("default bridge to the world: %v %v", err, seen)
		}
		if err := blocked(t, h.ns, "172.18.0.2:80"); err != nil {
			t.Errorf("the default bridge to front: %v", err)
		}
		if _, err := h.query(t, ep.Gateway, "a.", dns.TypeA, "udp"); err == nil {
			t.Error("the default bridge has a DNS server")
		}
	})

	t.Run("bridge deleted behind the Manager's back", func(t *testing.T) {
		must(t, deleteLink(front.Bridge))
		r := newContainer(t, "r")
		r.connect(t, m, "front", EndpointConfig{})
		if seen, err := dialFrom(t, r.ns, "172.18.0.2:80", 3*time.Second); err != nil {
			t.Errorf("r to a on the bridge made again: %v %v", err, seen)
		}
		resp, err := r.query(t, front.Gateway, "a.", dns.TypeA, "udp")
		if err != nil || !slices.Equal(answersA(resp), []string{"172.18.0.2"}) {
			t.Errorf("DNS on the bridge made again: %v %v", resp, err)
		}
		must(t, m.Disconnect(ctx, "front", r.id))
	})

	t.Run("subnet taken by an interface since", func(t *testing.T) {
		late, err := m.Create(ctx, api.NetworkCreateArgs{Name: "late", Subnet: "172.30.0.0/16"})
		must(t, err)
		// This kernel may lack dummy interfaces; a veth pair will do.
		must(t, netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other1"}))
		defer deleteLink("other0")
		other, err := netlink.LinkByName("other0")
		must(t, err)
		must(t, netlink.AddrAdd(other, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("172.30.5.1/24"))}))
		k := newContainer(t, "k")
		_, err = m.Connect(ctx, "late", EndpointConfig{ContainerID: k.id, ContainerName: "k", NetNS: k.ns, Interface: "eth0"})
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "other0") {
			t.Errorf("connect to a network whose subnet an interface took: %v", err)
		}
		if linkExists(late.Bridge) {
			t.Error("made the bridge anyway")
		}
		must(t, m.Remove(ctx, "late"))
	})

	t.Run("internal network", func(t *testing.T) {
		in, err := m.Create(ctx, api.NetworkCreateArgs{Name: "inside", Internal: true})
		must(t, err)
		i1, i2 := newContainer(t, "i1"), newContainer(t, "i2")
		ep1 := i1.connect(t, m, "inside", EndpointConfig{DefaultRoute: true})
		i2.connect(t, m, "inside", EndpointConfig{DefaultRoute: true})
		listenIn(t, i1.ns, ":82")
		if _, err := dialFrom(t, i2.ns, net.JoinHostPort(ep1.Addr.Addr().String(), "82"), 3*time.Second); err != nil {
			t.Errorf("within an internal network: %v", err)
		}
		hd := handleIn(t, i2.ns)
		routes, _ := hd.RouteList(nil, netlink.FAMILY_V4)
		if slices.ContainsFunc(routes, isDefault) {
			t.Errorf("internal network gave a default route: %v", routes)
		}
		// Even with a route of its own, nothing leaves.
		link, err := hd.LinkByName("eth0")
		must(t, err)
		must(t, hd.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.IP(in.Gateway.AsSlice()), Family: netlink.FAMILY_V4}))
		if err := blocked(t, i2.ns, worldHost); err != nil {
			t.Errorf("an internal network to the world: %v", err)
		}
		if err := blocked(t, i2.ns, "172.18.0.2:80"); err != nil {
			t.Errorf("an internal network to front: %v", err)
		}
		if slices.ContainsFunc(masqueradeRules(t), func(r string) bool { return strings.HasPrefix(r, in.Subnet.Addr().String()) }) {
			t.Error("an internal network is masqueraded")
		}
		resp, err := i2.query(t, in.Gateway, "i1.", dns.TypeA, "udp")
		if err != nil || !slices.Equal(answersA(resp), []string{ep1.Addr.Addr().String()}) {
			t.Errorf("internal network's DNS: %v %v", resp, err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		before := map[string]string{}
		for _, n := range m.List() {
			before[n.Name] = n.ID
		}
		must(t, m.Close())
		closed = true
		m2 := openManager(t, root, w.resolvConf)
		defer m2.Close()
		after := map[string]string{}
		for _, n := range m2.List() {
			after[n.Name] = n.ID
		}
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("networks changed across a restart: %v, then %v", before, after)
		}
		// The bridge, the table and a's veth are left from m; endpoints
		// are not, so a's veth is stale.
		if !linkExists(epA.HostVeth) {
			t.Fatal("test premise: a's veth should be left over")
		}
		j := newContainer(t, "j")
		epJ := j.connect(t, m2, "front", EndpointConfig{DefaultRoute: true})
		if epJ.Addr.String() != "172.18.0.2/16" {
			t.Errorf("first address after a restart: %v", epJ.Addr)
		}
		if linkExists(epA.HostVeth) {
			t.Error("stale veth left on the bridge")
		}
		seen, err := dialFrom(t, j.ns, worldHost, 3*time.Second)
		if err != nil || seen != uplinkIP {
			t.Errorf("after a restart, to the world: %v %v", err, seen)
		}
		if got, want := masqueradeRules(t), []string{"172.18.0.0/16 !" + front.Bridge}; !slices.Equal(got, want) {
			t.Errorf("rules after a restart: %q, want %q", got, want)
		}
		resp, err := j.query(t, front.Gateway, "j.", dns.TypeA, "udp")
		if err != nil || !slices.Equal(answersA(resp), []string{"172.18.0.2"}) {
			t.Errorf("DNS after a restart: %v %v", resp, err)
		}
		must(t, m2.Disconnect(ctx, "front", j.id))
		must(t, m2.Remove(ctx, "front"))
		if linkExists(front.Bridge) {
			t.Error("removed network's bridge remains")
		}
		if got := masqueradeRules(t); len(got) != 0 {
			t.Errorf("rules after removing the last network: %q", got)
		}
		// back's bridge was never brought up by m2: removing it still
		// deletes what m left.
		must(t, m2.Remove(ctx, "back"))
		if linkExists(back.Bridge) {
			t.Error("leftover bridge of a removed network remains")
		}
		if _, err := os.Stat(filepath.Join(root, front.ID+".json")); !os.IsNotExist(err) {
			t.Errorf("removed network's file: %v", err)
		}
		must(t, m2.Remove(ctx, "inside"))
		must(t, deleteLink(defaultBridge))
	})
}
