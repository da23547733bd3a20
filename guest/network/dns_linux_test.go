package network

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// testResolver is front (172.18.0.0/16) with web (alias www, short ID
// 0123456789ab) at .2 and db at .3, whose upstream is missing unless
// resolvConf is written.
func testResolver(t *testing.T, resolvConf string) *resolver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if resolvConf != "" {
		if err := os.WriteFile(path, []byte(resolvConf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fwd := &forwarder{resolvConf: path, timeout: forwardTimeout}
	r := newResolver("Front", netip.MustParsePrefix("172.18.0.0/16"), false, fwd, newPeerIndex(), slog.New(slog.DiscardHandler))
	r.add(netip.MustParseAddr("172.18.0.2"), dnsNames(EndpointConfig{ContainerID: "0123456789abcdef", ContainerName: "web", Aliases: []string{"WWW", "web"}}))
	r.add(netip.MustParseAddr("172.18.0.3"), []string{"db", "fedcba987654"})
	return r
}

var inSubnet = &net.UDPAddr{IP: net.IPv4(172, 18, 0, 9), Port: 40000}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	return m
}

func TestResolverAnswers(t *testing.T) {
	r := testResolver(t, "search corp.example lab\n")
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // A addresses or PTR targets
	}{
		{"web.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"web", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"WeB.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"www.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"0123456789ab.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"db.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.3"}},
		{"web.front.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"web.corp.example.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.2"}},
		{"db.lab.", dns.TypeA, dns.RcodeSuccess, []string{"172.18.0.3"}},
		{"web.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"2.0.18.172.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"web.front."}},
		{"3.0.18.172.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"db.front."}},
		// Not ours, and no upstream to ask.
		{"web.elsewhere.", dns.TypeA, dns.RcodeServerFailure, nil},
		{"example.com.", dns.TypeA, dns.RcodeServerFailure, nil},
		{"9.0.18.172.in-addr.arpa.", dns.TypePTR, dns.RcodeServerFailure, nil},
		{"web.", dns.TypeMX, dns.RcodeServerFailure, nil},
	} {
		q := query(tc.name, tc.qtype)
		resp := r.answer(q, inSubnet)
		if resp == nil {
			t.Errorf("%s %s: no reply", tc.name, dns.TypeToString[tc.qtype])
			continue
		}
		if resp.Id != q.Id || !resp.Response || !resp.RecursionAvailable || resp.Rcode != tc.rcode {
			t.Errorf("%s %s: id %d response %v ra %v rcode %s; want rcode %s", tc.name, dns.TypeToString[tc.qtype],
				resp.Id, resp.Response, resp.RecursionAvailable, dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
		}
		var got []string
		for _, rr := range resp.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				got = append(got, rr.A.String())
			case *dns.PTR:
				got = append(got, rr.Ptr)
			}
			if rr.Header().Name != tc.name {
				t.Errorf("%s: answer names %s", tc.name, rr.Header().Name)
			}
		}
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s %s: answers %v, want %v", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
}

func TestResolverSharedAliasAndRemoval(t *testing.T) {
	r := testResolver(t, "")
	r.add(netip.MustParseAddr("172.18.0.4"), []string{"web2", "www"})
	resp := r.answer(query("www.", dns.TypeA), inSubnet)
	if len(resp.Answer) != 2 {
		t.Fatalf("shared alias: %v", resp.Answer)
	}
	r.remove(netip.MustParseAddr("172.18.0.2"), []string{"web", "WWW", "0123456789ab"})
	resp = r.answer(query("www.", dns.TypeA), inSubnet)
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "172.18.0.4" {
		t.Errorf("after removal: %v", resp.Answer)
	}
	if resp := r.answer(query("web.", dns.TypeA), inSubnet); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("removed name still answered: %v", resp)
	}
	if resp := r.answer(query("2.0.18.172.in-addr.arpa.", dns.TypePTR), inSubnet); len(resp.Answer) != 0 {
		t.Errorf("removed address still answered: %v", resp)
	}
}

func TestResolverAcrossTheContainersNetworks(t *testing.T) {
	front := testResolver(t, "")
	back := newResolver("back", netip.MustParsePrefix("172.19.0.0/16"), false, front.fwd, front.peers, front.log)
	back.add(netip.MustParseAddr("172.19.0.2"), []string{"cache"})
	// proxy is on both networks; lonely is on front only.
	proxyFront, proxyBack := netip.MustParseAddr("172.18.0.9"), netip.MustParseAddr("172.19.0.9")
	front.add(proxyFront, []string{"proxy"})
	back.add(proxyBack, []string{"proxy"})
	front.peers.add("proxy-id", proxyFront, front)
	front.peers.add("proxy-id", proxyBack, back)
	lonely := &net.UDPAddr{IP: net.IPv4(172, 18, 0, 10), Port: 5353}
	front.peers.add("lonely-id", netip.MustParseAddr("172.18.0.10"), front)

	fromProxy := &net.UDPAddr{IP: proxyFront.AsSlice(), Port: 5353}
	for _, name := range []string{"cache.", "cache.back."} {
		resp := front.answer(query(name, dns.TypeA), fromProxy)
		if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "172.19.0.2" {
			t.Errorf("%s from a container on both networks: %v", name, resp)
		}
	}
	// Its own network's address comes first.
	if resp := front.answer(query("proxy.", dns.TypeA), fromProxy); resp.Answer[0].(*dns.A).A.String() != proxyFront.String() {
		t.Errorf("proxy: %v", resp.Answer)
	}
	if resp := front.answer(query("2.0.19.172.in-addr.arpa.", dns.TypePTR), fromProxy); len(resp.Answer) != 1 || resp.Answer[0].(*dns.PTR).Ptr != "cache.back." {
		t.Errorf("PTR across networks: %v", resp)
	}
	if resp := front.answer(query("cache.", dns.TypeA), lonely); len(resp.Answer) != 0 {
		t.Errorf("a container not on back resolved its names: %v", resp)
	}
	front.peers.remove("proxy-id", proxyBack, back)
	if resp := front.answer(query("cache.", dns.TypeA), fromProxy); len(resp.Answer) != 0 {
		t.Errorf("resolved after leaving back: %v", resp)
	}
}

func TestResolverRefusesOthers(t *testing.T) {
	r := testResolver(t, "")
	resp := r.answer(query("web.", dns.TypeA), &net.UDPAddr{IP: net.IPv4(172, 19, 0, 2), Port: 5353})
	if resp.Rcode != dns.RcodeRefused || len(resp.Answer) != 0 {
		t.Errorf("a client of another network: %v", resp)
	}
	bad := query("web.", dns.TypeA)
	bad.Question = append(bad.Question, bad.Question[0])
	if resp := r.answer(bad, inSubnet); resp.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v", resp)
	}
	notQuery := query("web.", dns.TypeA)
	notQuery.Response = true
	if resp := r.answer(notQuery, inSubnet); resp != nil {
		t.Errorf("answered a response: %v", resp)
	}
}

func TestResolverInternalDoesNotForward(t *testing.T) {
	r := testResolver(t, "nameserver 127.0.0.1\n")
	r.internal = true
	if resp := r.answer(query("example.com.", dns.TypeA), inSubnet); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("internal network forwarded: %v", resp)
	}
	if resp := r.answer(query("web.", dns.TypeA), inSubnet); len(resp.Answer) != 1 {
		t.Errorf("internal network's own names: %v", resp)
	}
}

func TestReadResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# comment\nnameserver 10.0.2.3\nnameserver fe80::1%eth0\nnameserver bogus\n; other\nsearch a.example b.example\noptions ndots:2\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := readResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.nameservers) != 2 || rc.nameservers[0] != netip.MustParseAddr("10.0.2.3") || len(rc.search) != 2 {
		t.Errorf("%+v", rc)
	}
}

func TestParseReverse(t *testing.T) {
	for name, want := range map[string]string{
		"2.0.17.172.in-addr.arpa":   "172.17.0.2",
		"1.0.0.10.in-addr.arpa":     "10.0.0.1",
		"0.17.172.in-addr.arpa":     "",
		"x.0.17.172.in-addr.arpa":   "",
		"2.0.17.172.ip6.arpa":       "",
		"300.0.17.172.in-addr.arpa": "",
	} {
		a, ok := parseReverse(name)
		if want == "" && ok || want != "" && (!ok || a.String() != want) {
			t.Errorf("parseReverse(%s) = %v, %v; want %q", name, a, ok, want)
		}
	}
}

// fakeWriter is a dns.ResponseWriter that keeps the reply.
type fakeWriter struct {
	remote net.Addr
	reply  *dns.Msg
}

func (w *fakeWriter) RemoteAddr() net.Addr        { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error   { w.reply = m; return nil }
func (w *fakeWriter) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(172, 18, 0, 1), Port: 53} }
func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

func TestResolverTruncatesOverUDP(t *testing.T) {
	r := testResolver(t, "")
	for i := 10; i < 110; i++ {
		r.add(netip.AddrFrom4([4]byte{172, 18, 1, byte(i)}), []string{"replica-" + string(rune('a'+i%26)), "many"})
	}
	w := &fakeWriter{remote: inSubnet}
	r.ServeDNS(w, query("many.", dns.TypeA))
	packed, err := w.reply.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if !w.reply.Truncated || len(packed) > dns.MinMsgSize || len(w.reply.Answer) == 0 {
		t.Errorf("over UDP: truncated %v, %d bytes, %d answers", w.reply.Truncated, len(packed), len(w.reply.Answer))
	}
	w = &fakeWriter{remote: &net.TCPAddr{IP: inSubnet.IP, Port: 40000}}
	r.ServeDNS(w, query("many.", dns.TypeA))
	if w.reply.Truncated || len(w.reply.Answer) != 100 {
		t.Errorf("over TCP: truncated %v, %d answers", w.reply.Truncated, len(w.reply.Answer))
	}
}
