//go:build linux

package boot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot/dhcp"
	"github.com/vmbox/vmbox/guest/boot/netlink"
)

// NetworkState is the guest's network configuration at one moment.
type NetworkState struct {
	Interface string
	Addr      netip.Prefix // invalid while a DHCP lease is being (re)acquired
	Gateway   netip.Addr
	DNS       []netip.Addr
	Lease     *dhcp.Lease // the current lease, with vmconfig.NetworkDHCP
}

// network configures and then maintains the guest's interface.
type network struct {
	cfg      vmconfig.Network
	hostname string
	etcDir   string // "/etc"; files resolv.conf and hosts are written there
	logf     func(format string, args ...any)

	rt   *netlink.Conn
	ifi  *net.Interface
	dhcp *dhcp.Client

	mu    sync.Mutex
	state NetworkState
}

// setupNetwork brings up lo and configures the interface of cfg. Every
// socket it needs is opened here, on the calling thread, so all of it
// happens in the caller's network namespace even when renewal runs later
// on another thread. With vmconfig.NetworkDHCP it returns once the first lease is
// applied and renews it until bg ends.
func setupNetwork(ctx, bg context.Context, cfg vmconfig.Network, hostname, etcDir string, t *Timings, logf func(string, ...any)) (*network, error) {
	n := &network{cfg: cfg, hostname: hostname, etcDir: etcDir, logf: logf}
	rt, err := netlink.Open()
	if err != nil {
		return nil, err
	}
	n.rt = rt
	start := time.Now()
	if err := rt.LinkUp("lo"); err != nil {
		rt.Close()
		return nil, err
	}
	t.Add("network lo up", start)
	if cfg.Mode == vmconfig.NetworkNone {
		if err := n.writeHosts(netip.Addr{}); err != nil {
			rt.Close()
			return nil, err
		}
		return n, nil
	}

	name := cfg.InterfaceName()
	start = time.Now()
	ifi, err := netlink.WaitLink(ctx, name)
	if err != nil {
		rt.Close()
		return nil, err
	}
	n.ifi = ifi
	t.Add("network wait "+name, start)
	start = time.Now()
	if err := rt.LinkUp(name); err != nil {
		rt.Close()
		return nil, err
	}
	t.Add("network "+name+" up", start)
	if cfg.ProxyARP {
		// /proc/sys/net is the opening thread's namespace, like rt.
		if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", name, "proxy_arp"), []byte("1"), 0o644); err != nil {
			rt.Close()
			return nil, fmt.Errorf("proxy ARP on %s: %w", name, err)
		}
	}

	switch cfg.Mode {
	case vmconfig.NetworkStatic:
		start = time.Now()
		addr, gw, dns, err := cfg.StaticSettings()
		if err == nil {
			err = n.apply(addr, gw, dns, nil, netlink.ProtoBoot)
		}
		if err != nil {
			rt.Close()
			return nil, err
		}
		t.Add("network static "+addr.String(), start)
	case vmconfig.NetworkDHCP:
		start = time.Now()
		c, err := dhcp.NewClient(ifi, hostname)
		if err != nil {
			rt.Close()
			return nil, err
		}
		n.dhcp = c
		l, err := c.Acquire(ctx)
		if err == nil {
			err = n.applyLease(l)
		}
		if err != nil {
			c.Close()
			rt.Close()
			return nil, err
		}
		t.Add("network dhcp "+l.Addr.String(), start)
		go func() {
			c.Maintain(bg, l, func(l *dhcp.Lease) {
				if err := n.applyLease(l); err != nil {
					n.logf("dhcp: %v", err)
				}
			})
			c.Close()
		}()
	}
	return n, nil
}

// State returns the current configuration.
func (n *network) State() NetworkState {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.state
	s.DNS = append([]netip.Addr(nil), s.DNS...)
	return s
}

// applyLease configures a lease, or drops the address for nil.
func (n *network) applyLease(l *dhcp.Lease) error {
	if l == nil {
		n.mu.Lock()
		old := n.state.Addr
		n.state.Addr, n.state.Lease = netip.Prefix{}, nil
		n.mu.Unlock()
		if old.IsValid() {
			return n.rt.DelAddr(n.ifi.Index, old)
		}
		return nil
	}
	dns := l.DNS
	if len(n.cfg.DNS) > 0 {
		dns = nil
		for _, s := range n.cfg.DNS {
			if a, err := netip.ParseAddr(s); err == nil {
				dns = append(dns, a)
			}
		}
	}
	return n.apply(l.Addr, l.Router, dns, l, netlink.ProtoDHCP)
}

// apply sets addr (replacing a different previous one), the default route
// and the resolver files.
func (n *network) apply(addr netip.Prefix, gw netip.Addr, dns []netip.Addr, l *dhcp.Lease, proto uint8) error {
	n.mu.Lock()
	old := n.state.Addr
	n.mu.Unlock()
	if old.IsValid() && old != addr {
		if err := n.rt.DelAddr(n.ifi.Index, old); err != nil {
			return err
		}
	}
	if err := n.rt.AddAddr(n.ifi.Index, addr); err != nil {
		return err
	}
	if gw.IsValid() {
		if err := n.rt.SetDefaultRoute(n.ifi.Index, gw, proto); err != nil {
			return err
		}
	}
	search := n.cfg.Search
	if len(search) == 0 && l != nil && l.Domain != "" {
		search = strings.Fields(l.Domain)
	}
	if err := n.writeResolvConf(dns, search); err != nil {
		return err
	}
	if err := n.writeHosts(gw); err != nil {
		return err
	}
	n.mu.Lock()
	n.state = NetworkState{Interface: n.ifi.Name, Addr: addr, Gateway: gw, DNS: dns, Lease: l}
	n.mu.Unlock()
	return nil
}

func (n *network) writeResolvConf(dns []netip.Addr, search []string) error {
	var b strings.Builder
	b.WriteString("# written by vmbox\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	return writeFileAtomic(filepath.Join(n.etcDir, "resolv.conf"), b.String())
}

// writeHosts maps localhost, the hostname and, with a gateway, vmconfig.HostAlias.
func (n *network) writeHosts(gw netip.Addr) error {
	var b strings.Builder
	b.WriteString("# written by vmbox\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&b, "127.0.1.1\t%s\n", n.hostname)
	if gw.IsValid() {
		fmt.Fprintf(&b, "%s\t%s\n", gw, vmconfig.HostAlias)
	}
	return writeFileAtomic(filepath.Join(n.etcDir, "hosts"), b.String())
}

// Close stops using the netlink socket. DHCP renewal stops with its context.
func (n *network) Close() error { return n.rt.Close() }

// writeFileAtomic replaces path with content so readers never see half a file.
func writeFileAtomic(path, content string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
