package boot

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot/dhcp/dhcptest"
	"github.com/vmbox/vmbox/guest/boot/internal/netnstest"
)

func TestSetupNetworkStatic(t *testing.T) {
	ns := netnstest.New(t)
	netnstest.IP(t, "-n", ns, "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p")
	etc := t.TempDir()
	var st NetworkState
	netnstest.Run(t, ns, func() {
		ctx := context.Background()
		cfg := vmconfig.Network{Mode: vmconfig.NetworkStatic, Interface: "eth9", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}, Search: []string{"corp.example"}, ProxyARP: true}
		n, err := setupNetwork(ctx, ctx, cfg, "box1", etc, &Timings{}, t.Logf)
		if err != nil {
			t.Error(err)
			return
		}
		defer n.Close()
		st = n.State()
		if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/eth9/proxy_arp"); err != nil || string(b) != "1\n" {
			t.Errorf("proxy_arp on eth9 = %q, %v; want 1", b, err)
		}
	})
	if t.Failed() {
		return
	}
	if st.Addr.String() != "10.0.2.15/24" || st.Gateway.String() != "10.0.2.2" || len(st.DNS) != 1 || st.DNS[0].String() != "10.0.2.3" || st.Interface != "eth9" {
		t.Errorf("state = %+v", st)
	}
	checkFile(t, filepath.Join(etc, "resolv.conf"), "# written by vmbox\nsearch corp.example\nnameserver 10.0.2.3\n")
	checkFile(t, filepath.Join(etc, "hosts"), "# written by vmbox\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox1\n10.0.2.2\thost.vmbox.internal\n")
	if out := netnstest.IP(t, "-n", ns, "-d", "route", "show", "default"); !strings.Contains(out, "default via 10.0.2.2 dev eth9 proto boot") {
		t.Errorf("default route: %s", out)
	}
	if out := netnstest.IP(t, "-n", ns, "-o", "link", "show", "lo"); !strings.Contains(out, ",UP") {
		t.Errorf("lo not up: %s", out)
	}
}

func checkFile(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
		return
	}
	if string(b) != want {
		t.Errorf("%s:\n got %q\nwant %q", p, b, want)
	}
}

// TestDHCPClientRoundTrip runs the real client (setupNetwork in DHCP mode)
// against a DHCP server across a veth pair between two network namespaces:
// NAK handling, the lease applied with netlink, the resolver files, and a
// unicast renewal at T1.
func TestDHCPClientRoundTrip(t *testing.T) {
	srvNS, cliNS := netnstest.New(t), netnstest.New(t)
	netnstest.IP(t, "-n", srvNS, "link", "add", "vsrv", "type", "veth", "peer", "name", "vcli", "netns", cliNS)
	netnstest.IP(t, "-n", srvNS, "addr", "add", "192.168.77.1/24", "dev", "vsrv")
	netnstest.IP(t, "-n", srvNS, "link", "set", "vsrv", "up")

	srv := &dhcptest.Server{
		Addr:    netip.MustParseAddr("192.168.77.50"),
		Self:    netip.MustParseAddr("192.168.77.1"),
		Lease:   6 * time.Second,
		T1:      1 * time.Second,
		T2:      5 * time.Second,
		Renewed: make(chan netip.Addr, 1),
	}
	netnstest.Run(t, srvNS, func() {
		if err := srv.Listen("vsrv"); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	go srv.Serve(t)
	defer srv.Close()

	etc := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bg, stop := context.WithCancel(ctx)
	defer stop()
	var n *network
	netnstest.Run(t, cliNS, func() {
		var err error
		// Renewal outlives this function by a moment: log to stderr, not t.
		logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "dhcp client: "+f+"\n", a...) }
		n, err = setupNetwork(ctx, bg, vmconfig.Network{Mode: vmconfig.NetworkDHCP, Interface: "vcli"}, "dhcpbox", etc, &Timings{}, logf)
		if err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	first := n.State()
	if first.Addr.String() != "192.168.77.50/24" || first.Gateway != srv.Self || len(first.DNS) != 2 || first.Lease == nil || first.Lease.Server != srv.Self {
		t.Fatalf("state after DHCP = %+v", first)
	}
	seen := srv.Seen()
	// DISCOVER, REQUEST (NAK), DISCOVER, REQUEST (ACK); retransmissions
	// (the first packets may leave before the link is up) repeat a type.
	if got := slices.Compact(seen); len(got) < 4 || got[0] != dhcptest.Discover || got[1] != dhcptest.Request || got[2] != dhcptest.Discover || got[3] != dhcptest.Request {
		t.Errorf("server saw wire.Message types %v", seen)
	}
	checkFile(t, filepath.Join(etc, "resolv.conf"), "# written by vmbox\nsearch test.internal\nnameserver 192.168.77.1\nnameserver 9.9.9.9\n")
	checkFile(t, filepath.Join(etc, "hosts"), "# written by vmbox\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tdhcpbox\n192.168.77.1\thost.vmbox.internal\n")
	if out := netnstest.IP(t, "-n", cliNS, "-4", "-o", "addr", "show", "dev", "vcli"); !strings.Contains(out, "inet 192.168.77.50/24") {
		t.Errorf("client address: %s", out)
	}
	if out := netnstest.IP(t, "-n", cliNS, "-d", "route", "show", "default"); !strings.Contains(out, "default via 192.168.77.1 dev vcli proto dhcp") {
		t.Errorf("client default route: %s", out)
	}

	// The renewal is a unicast REQUEST from the leased address at T1.
	select {
	case from := <-srv.Renewed:
		if from != srv.Addr {
			t.Errorf("renewal from %s", from)
		}
	case <-ctx.Done():
		t.Fatal("no renewal before the test's time limit")
	}
	// The renewed lease is applied right after the ACK; wait for it.
	for n.State().Lease == nil || !n.State().Lease.Acquired.After(first.Lease.Acquired) {
		select {
		case <-ctx.Done():
			t.Fatal("renewed lease never applied")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := n.State().Addr; got != first.Addr {
		t.Errorf("address after renewal: %s", got)
	}
}
