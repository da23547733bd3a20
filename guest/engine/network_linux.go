package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/network"
)

// PortPublisher makes containers' published ports reachable from outside
// the VM: the host process's listeners in a VM (over the agent's SSH
// connection), listeners of this machine when the engine runs on it.
type PortPublisher interface {
	// Publish binds every port for the container and forwards each
	// connection to ip:ContainerPort. HostPort 0 is replaced, in the
	// result, by the port taken. On failure nothing stays bound and the
	// error is one line ("Bind for 127.0.0.1:80 failed: port is already
	// allocated").
	Publish(ctx context.Context, containerID string, ip netip.Addr, ports []api.PortBinding) ([]api.PortBinding, error)
	// Unpublish releases the container's ports; unknown IDs are ignored.
	Unpublish(containerID string)
}

// netAttachment is a network a container joins when it starts: the record
// keeps it across restarts; the first one carries the default route and
// the published ports.
type netAttachment struct {
	Network string   `json:"network"` // ID
	Name    string   `json:"name"`    // as the user named it, for messages
	Aliases []string `json:"aliases,omitempty"`
	IPv4    string   `json:"ipv4,omitempty"` // asked for; empty: any
}

// Files a container sees at /etc, kept in its directory.
const (
	hostsFile      = "hosts"
	resolvConfFile = "resolv.conf"
	hostnameFile   = "hostname"
)

// Docker's messages for network modes that cannot have what was asked.
const (
	errPortsMode   = "conflicting options: port publishing and the container type network mode"
	errAliasesMode = "network-scoped alias is supported only for containers in user defined networks"
)

// resolveNetworkMode checks cfg's network settings and fills rec with the
// mode to record (a container's or network's ID where one was named) and
// the networks to join.
func (e *Engine) resolveNetworkMode(cfg api.ContainerConfig, rec *record) (warnings []string, err error) {
	mode := cfg.NetworkMode
	switch {
	case mode == "" || mode == "default" || mode == api.NetworkBridge:
		if e.opts.Networks == nil {
			// An engine without networks gives loopback only.
			rec.Config.NetworkMode = container.NetworkNone
			return nil, nil
		}
		mode = api.NetworkBridge
	case mode == api.NetworkHost:
		rec.Config.NetworkMode = container.NetworkHost
		if len(cfg.PortBindings) > 0 || cfg.PublishAllPorts {
			warnings = append(warnings, "Published ports are discarded when using host network mode")
		}
		rec.Config.PortBindings, rec.Config.PublishAllPorts = nil, false
		if len(cfg.NetworkAliases) > 0 {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, errAliasesMode)
		}
		return warnings, nil
	case mode == api.NetworkNone:
		rec.Config.NetworkMode = container.NetworkNone
		if len(cfg.PortBindings) > 0 || cfg.PublishAllPorts {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, errPortsMode)
		}
		if len(cfg.NetworkAliases) > 0 {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, errAliasesMode)
		}
		return nil, nil
	case strings.HasPrefix(mode, api.NetworkContainerPrefix):
		ref := strings.TrimPrefix(mode, api.NetworkContainerPrefix)
		other, err := e.lookup(ref)
		if err != nil {
			return nil, err
		}
		if len(cfg.PortBindings) > 0 || cfg.PublishAllPorts {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, errPortsMode)
		}
		if cfg.Hostname != "" {
			return nil, fmt.Errorf("%w: conflicting options: hostname and the network mode", ErrInvalid)
		}
		if len(cfg.DNS) > 0 || len(cfg.ExtraHosts) > 0 {
			return nil, fmt.Errorf("%w: conflicting options: dns and the network mode", ErrInvalid)
		}
		rec.Config.NetworkMode = api.NetworkContainerPrefix + other.rec.ID
		return nil, nil
	}
	if e.opts.Networks == nil {
		return nil, fmt.Errorf("%w: network mode %q is not supported (none or host)", ErrInvalid, mode)
	}
	n, err := e.opts.Networks.Get(mode)
	if err != nil {
		return nil, networkErr(err)
	}
	if n.Predefined && n.Name != api.NetworkBridge {
		// "host" and "none" by ID.
		return e.resolveNetworkMode(withMode(cfg, n.Name), rec)
	}
	if n.Name == api.NetworkBridge && len(cfg.NetworkAliases) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, errAliasesMode)
	}
	rec.Config.NetworkMode = n.Name
	rec.Networks = []netAttachment{{Network: n.ID, Name: n.Name, Aliases: cfg.NetworkAliases}}
	return nil, nil
}

func withMode(cfg api.ContainerConfig, mode string) api.ContainerConfig {
	cfg.NetworkMode = mode
	return cfg
}

// networkErr maps the network manager's errors onto the engine's.
func networkErr(err error) error {
	switch {
	case errors.Is(err, network.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, network.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, network.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	case errors.Is(err, network.ErrInUse):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, network.ErrForbidden):
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	return err
}

// netSetup is one start's network: what Prepare made, to record once the
// container runs or to undo when the start fails.
type netSetup struct {
	e         *Engine
	id        string
	endpoints []network.Endpoint
	ports     []api.PortBinding
	published bool
}

// prepareNetwork fills spec's network for c's start: the joined namespace
// of a container:NAME mode, the /etc files, and a Prepare hook that
// plumbs the networks and publishes the ports. Call with c.mu held.
func (e *Engine) prepareNetwork(c *managedContainer, spec *container.Spec) (*netSetup, error) {
	rec := &c.rec
	ns := &netSetup{e: e, id: rec.ID}
	hosts, resolv, hostname := filepath.Join(c.dir, hostsFile), filepath.Join(c.dir, resolvConfFile), filepath.Join(c.dir, hostnameFile)
	if ref, ok := strings.CutPrefix(rec.Config.NetworkMode, api.NetworkContainerPrefix); ok {
		other, err := e.lookup(ref)
		if err != nil {
			return nil, fmt.Errorf("cannot join network of a non running container: %w", err)
		}
		other.mu.Lock()
		running, pid, odir := other.rc != nil, other.rec.State.Pid, other.dir
		other.mu.Unlock()
		if !running {
			return nil, fmt.Errorf("%w: cannot join network of a non running container: %s", ErrConflict, ref)
		}
		spec.NetNS = fmt.Sprintf("/proc/%d/ns/net", pid)
		hosts, resolv = filepath.Join(odir, hostsFile), filepath.Join(odir, resolvConfFile)
	} else {
		if err := writeFileInPlace(resolv, e.resolvConf(rec)); err != nil {
			return nil, err
		}
		// The addresses come once the namespace exists (Prepare); the
		// file must exist before, for the init to mount it.
		if err := writeFileInPlace(hosts, e.hostsFile(rec, nil)); err != nil {
			return nil, err
		}
	}
	if err := writeFileInPlace(hostname, rec.Hostname+"\n"); err != nil {
		return nil, err
	}
	spec.Mounts = append(spec.Mounts,
		container.Mount{Source: hostname, Target: "/etc/hostname"},
		container.Mount{Source: hosts, Target: "/etc/hosts"},
		container.Mount{Source: resolv, Target: "/etc/resolv.conf"},
	)
	if len(rec.Networks) == 0 || e.opts.Networks == nil {
		return ns, nil
	}
	ports, err := e.portsToPublish(rec)
	if err != nil {
		return nil, err
	}
	if len(ports) > 0 && e.opts.Ports == nil {
		return nil, fmt.Errorf("%w: this engine cannot publish ports", ErrInvalid)
	}
	networks := append([]netAttachment(nil), rec.Networks...)
	spec.Prepare = func(pid int) error {
		ctx := context.Background()
		netns := fmt.Sprintf("/proc/%d/ns/net", pid)
		for i, a := range networks {
			cfg := network.EndpointConfig{
				ContainerID: rec.ID, ContainerName: rec.Name, Aliases: a.Aliases,
				NetNS: netns, Interface: "eth" + strconv.Itoa(i), DefaultRoute: i == 0,
			}
			if a.IPv4 != "" {
				ip, err := netip.ParseAddr(a.IPv4)
				if err != nil {
					return fmt.Errorf("address %q on network %s: %w", a.IPv4, a.Name, err)
				}
				cfg.IPv4 = ip
			}
			ep, err := e.opts.Networks.Connect(ctx, a.Network, cfg)
			if err != nil {
				ns.undo()
				return fmt.Errorf("network %s: %w", a.Name, err)
			}
			ns.endpoints = append(ns.endpoints, ep)
		}
		if err := writeFileInPlace(hosts, e.hostsFile(rec, ns.endpoints)); err != nil {
			ns.undo()
			return err
		}
		first := ns.endpoints[0] // undo forgets the endpoints
		if n, err := e.opts.Networks.Get(first.NetworkID); err == nil && n.Internal {
			// Docker publishes nothing from an internal network: nothing
			// enters or leaves it.
			ports = nil
		}
		if len(ports) > 0 {
			got, err := e.opts.Ports.Publish(ctx, rec.ID, first.Addr.Addr(), ports)
			if err != nil {
				ns.undo()
				return fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): %w", rec.Name, first.ID, err)
			}
			ns.ports, ns.published = got, true
		}
		return nil
	}
	return ns, nil
}

// undo releases what the start made: ports, then endpoints.
func (ns *netSetup) undo() {
	if ns == nil {
		return
	}
	if ns.published {
		ns.e.opts.Ports.Unpublish(ns.id)
		ns.published = false
	}
	for _, ep := range ns.endpoints {
		_ = ns.e.opts.Networks.Disconnect(context.Background(), ep.NetworkID, ns.id)
	}
	ns.endpoints, ns.ports = nil, nil
}

// portsToPublish is the container's port bindings plus, with
// PublishAllPorts, every exposed port not bound otherwise on a free port.
func (e *Engine) portsToPublish(rec *record) ([]api.PortBinding, error) {
	out := append([]api.PortBinding(nil), rec.Config.PortBindings...)
	for _, b := range out {
		if b.ContainerPort == 0 || (b.Proto != "tcp" && b.Proto != "udp") {
			return nil, fmt.Errorf("%w: invalid port binding %+v", ErrInvalid, b)
		}
	}
	if !rec.Config.PublishAllPorts {
		return out, nil
	}
	bound := map[string]bool{}
	for _, b := range out {
		bound[b.Key()] = true
	}
	for _, key := range rec.exposedPorts() {
		if bound[key] {
			continue
		}
		port, proto, err := api.ParseExposedPort(key)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		out = append(out, api.PortBinding{ContainerPort: port, Proto: proto})
	}
	return out, nil
}

// exposedPorts are the image's and the user's exposed ports, as "80/tcp",
// sorted and without duplicates.
func (r *record) exposedPorts() []string {
	var out []string
	for _, list := range [][]string{r.ImageExposedPorts, r.Config.ExposedPorts} {
		for _, k := range list {
			if !strings.Contains(k, "/") {
				k += "/tcp"
			}
			out = append(out, k)
		}
	}
	for _, b := range r.Config.PortBindings {
		out = append(out, b.Key())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostsFile is the container's /etc/hosts, shaped like Docker's, with its
// addresses on eps and the host's names.
func (e *Engine) hostsFile(rec *record, eps []network.Endpoint) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	if e.opts.HostAddr.IsValid() {
		fmt.Fprintf(&b, "%s\t%s %s\n", e.opts.HostAddr, hostAlias, dockerHostAlias)
	}
	for _, h := range rec.Config.ExtraHosts {
		name, ip, _ := strings.Cut(h, ":")
		if ip == "host-gateway" && e.opts.HostAddr.IsValid() {
			ip = e.opts.HostAddr.String()
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	names := rec.Hostname
	if rec.Config.Domainname != "" {
		names = rec.Hostname + "." + rec.Config.Domainname + " " + rec.Hostname
	}
	if rec.Name != "" && rec.Name != rec.Hostname {
		names += " " + rec.Name
	}
	for _, ep := range eps {
		fmt.Fprintf(&b, "%s\t%s\n", ep.Addr.Addr(), names)
	}
	return b.String()
}

// Names the host has in containers' /etc/hosts.
const (
	hostAlias       = "host.vmbox.internal"
	dockerHostAlias = "host.docker.internal"
)

// resolvConf is the container's /etc/resolv.conf: the embedded DNS server
// (the network's gateway) on a user network, else the user's servers or
// the VM's own.
func (e *Engine) resolvConf(rec *record) string {
	servers, search, options := e.vmResolvConf()
	if len(rec.Config.DNS) > 0 {
		servers = rec.Config.DNS
	}
	if len(rec.Networks) > 0 && e.opts.Networks != nil {
		if n, err := e.opts.Networks.Get(rec.Networks[0].Network); err == nil && !n.Predefined {
			// The embedded server answers container names and forwards
			// the rest to the VM's servers.
			servers = append([]string{n.Gateway.String()}, rec.Config.DNS...)
		}
	}
	if rec.Config.NetworkMode != container.NetworkHost {
		// A loopback server of the VM is not reachable from another
		// network namespace.
		servers = slices.DeleteFunc(slices.Clone(servers), func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err == nil && a.IsLoopback()
		})
	}
	if len(rec.Config.DNSSearch) > 0 {
		search = rec.Config.DNSSearch
	}
	if len(rec.Config.DNSOptions) > 0 {
		options = rec.Config.DNSOptions
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// vmResolvConf reads the VM's resolver configuration.
func (e *Engine) vmResolvConf() (servers, search, options []string) {
	path := e.opts.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = f[1:]
		case "options":
			options = f[1:]
		}
	}
	return servers, search, options
}

// writeFileInPlace replaces path's content without replacing its inode:
// a bind mount of it shows the new content.
func writeFileInPlace(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// networkSettings is the container's NetworkSettings for inspect. Call
// with c.mu held.
func (c *managedContainer) networkSettings() api.NetworkSettings {
	s := api.NetworkSettings{Ports: map[string][]api.PortMapping{}, Networks: map[string]api.EndpointSettings{}}
	for _, key := range c.rec.exposedPorts() {
		s.Ports[key] = nil
	}
	var eps []network.Endpoint
	if c.net != nil {
		eps = c.net.endpoints
		for _, p := range c.net.ports {
			for _, ip := range hostIPs(p.HostIP) {
				s.Ports[p.Key()] = append(s.Ports[p.Key()], api.PortMapping{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
			}
		}
	}
	if c.rc != nil {
		s.SandboxKey = fmt.Sprintf("/proc/%d/ns/net", c.rec.State.Pid)
	}
	for _, a := range c.rec.Networks {
		es := api.EndpointSettings{Aliases: a.Aliases, NetworkID: a.Network}
		for _, ep := range eps {
			if ep.NetworkID != a.Network {
				continue
			}
			es.EndpointID, es.Gateway = ep.ID, ep.Gateway.String()
			es.IPAddress, es.IPPrefixLen = ep.Addr.Addr().String(), ep.Addr.Bits()
			es.MacAddress, es.DNSNames = ep.MAC.String(), ep.DNSNames
			if a.Name == api.NetworkBridge {
				s.IPAddress, s.IPPrefixLen, s.Gateway, s.MacAddress = es.IPAddress, es.IPPrefixLen, es.Gateway, es.MacAddress
			}
		}
		s.Networks[a.Name] = es
	}
	switch mode := c.rec.Config.NetworkMode; {
	case mode == container.NetworkHost || mode == container.NetworkNone:
		s.Networks[mode] = api.EndpointSettings{}
	}
	return s
}

// portSummaries are the container's ports as ps shows them. Call with c.mu
// held.
func (c *managedContainer) portSummaries() []api.PortSummary {
	out := []api.PortSummary{}
	published := map[string]bool{}
	if c.net != nil {
		for _, p := range c.net.ports {
			published[p.Key()] = true
			for _, ip := range hostIPs(p.HostIP) {
				out = append(out, api.PortSummary{IP: ip, PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Proto})
			}
		}
	}
	for _, key := range c.rec.exposedPorts() {
		if published[key] {
			continue
		}
		port, proto, err := api.ParseExposedPort(key)
		if err == nil {
			out = append(out, api.PortSummary{PrivatePort: port, Type: proto})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PrivatePort < out[j].PrivatePort })
	return out
}

// hostIPs are the addresses a binding's HostIP listens on: loopback means
// both families'.
func hostIPs(hostIP string) []string {
	if hostIP == "" {
		return []string{"127.0.0.1", "::1"}
	}
	return []string{hostIP}
}

// networkNames lists the networks the container is on, for ps.
func (c *managedContainer) networkNames() []string {
	if len(c.rec.Networks) == 0 {
		mode := c.rec.Config.NetworkMode
		if strings.HasPrefix(mode, api.NetworkContainerPrefix) {
			return nil
		}
		return []string{mode}
	}
	out := make([]string, 0, len(c.rec.Networks))
	for _, a := range c.rec.Networks {
		out = append(out, a.Name)
	}
	return out
}
