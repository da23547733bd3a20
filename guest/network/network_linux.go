package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// Errors of the Manager, for callers to map onto Docker's answers. Each is
// wrapped with Docker's own message ("network foo not found"), which is
// also the error's text.
var (
	ErrNotFound  = errors.New("network not found")
	ErrConflict  = errors.New("conflict")
	ErrInvalid   = errors.New("invalid argument")
	ErrInUse     = errors.New("network in use")
	ErrForbidden = errors.New("operation not permitted")
	// ErrClosed is returned by changes asked of a closed Manager.
	ErrClosed = errors.New("network manager closed")
)

// kindError carries one of the sentinel errors without putting its text
// in front of Docker's message.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// Drivers of the networks, as Docker names them.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// The default network, Docker's docker0.
const (
	defaultBridge = "vmbox0"
)

var (
	defaultSubnet  = netip.MustParsePrefix("172.17.0.0/16")
	defaultGateway = netip.MustParseAddr("172.17.0.1")
)

// Options configure a Manager.
type Options struct {
	// Root is the directory of the persisted networks, one JSON file
	// each.
	Root string
	// HostAddr is the host as the VM reaches it; informational for now.
	HostAddr netip.Addr
	// ResolvConf is the VM's resolver configuration, read at each query
	// the DNS servers forward (DHCP may change it); /etc/resolv.conf when
	// empty.
	ResolvConf string
	// LoadModule loads a kernel module by name; nil assumes everything
	// needed is built into the kernel.
	LoadModule func(ctx context.Context, name string) error
	// Log receives what goes wrong in the background (DNS, cleanup); nil
	// discards it.
	Log *slog.Logger
}

// Network is one network as the Manager keeps it.
type Network struct {
	ID       string            `json:"id"` // 64 hex digits
	Name     string            `json:"name"`
	Driver   string            `json:"driver"` // DriverBridge, DriverHost or DriverNull
	Subnet   netip.Prefix      `json:"subnet,omitzero"`
	Gateway  netip.Addr        `json:"gateway,omitzero"`
	IPRange  netip.Prefix      `json:"ipRange,omitzero"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Created  time.Time         `json:"created"`
	// Bridge is the Linux bridge of a bridge network.
	Bridge string `json:"bridge,omitempty"`
	// Predefined marks bridge, host and none, which cannot be removed.
	Predefined bool `json:"predefined,omitempty"`
}

func (n Network) clone() Network {
	n.Labels, n.Options = maps.Clone(n.Labels), maps.Clone(n.Options)
	return n
}

// user tells a user network (one that has an embedded DNS server) from
// the predefined ones.
func (n *Network) user() bool { return !n.Predefined && n.Driver == DriverBridge }

// Manager owns the networks and their endpoints. It is safe for concurrent
// use.
type Manager struct {
	opts Options
	log  *slog.Logger
	fwd  *forwarder
	// peers lets each network's DNS see the other networks of the
	// container asking.
	peers *peerIndex
	// sem is held by every change, across the kernel work it does, so
	// that the nftables table and the bridges follow the networks in
	// order; it is a channel so that waiting for it can be cancelled.
	sem    chan struct{}
	nets   map[string]*netState // by ID
	closed bool
	// kernelReady is set once forwarding is on and the modules are
	// loaded.
	kernelReady bool
	seq         uint64 // orders endpoints by connection
	dirLock     *os.File
}

// netState is a network with what this process made of it.
type netState struct {
	Network
	pool      *pool
	endpoints map[string]*endpointState // by container ID
	// up is set once the bridge, the rules and the DNS server exist in
	// this process's lifetime.
	up  bool
	dns *dnsServer // user networks, once up
	res *resolver  // user networks
}

// New opens the networks kept in o.Root and makes sure the predefined ones
// exist. It does not touch the kernel.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Root == "" {
		return nil, errorf(ErrInvalid, "network manager: no data directory")
	}
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	m := &Manager{
		opts:  o,
		log:   o.Log,
		sem:   make(chan struct{}, 1),
		nets:  map[string]*netState{},
		peers: newPeerIndex(),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.fwd = &forwarder{resolvConf: o.ResolvConf, timeout: forwardTimeout}
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return nil, fmt.Errorf("network data directory: %w", err)
	}
	// Two Managers would rewrite each other's nftables table and hand out
	// the same addresses.
	lock, err := lockDir(o.Root)
	if err != nil {
		return nil, err
	}
	m.dirLock = lock
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	stored, err := m.load()
	if err != nil {
		return nil, err
	}
	for _, n := range stored {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if other := m.byName(n.Name); other != nil {
			m.log.Warn("network name stored twice; keeping the older", "name", n.Name, "kept", other.ID, "ignored", n.ID)
			continue
		}
		m.add(n)
	}
	for _, n := range predefined() {
		if m.byName(n.Name) != nil {
			continue
		}
		n.ID = newID()
		if err := m.save(n); err != nil {
			return nil, err
		}
		m.add(n)
	}
	m.updateSubnets()
	ok = true
	return m, nil
}

// predefined are the networks Docker always has, without their IDs.
func predefined() []Network {
	now := time.Now()
	return []Network{
		{
			Name: api.NetworkBridge, Driver: DriverBridge, Subnet: defaultSubnet, Gateway: defaultGateway,
			Bridge: defaultBridge, Predefined: true, Created: now,
			Options: map[string]string{
				optDefaultBridge: "true",
				optICC:           "true",
				optMasquerade:    "true",
				optHostBinding:   "0.0.0.0",
				optBridgeName:    defaultBridge,
				optMTU:           "1500",
			},
		},
		{Name: api.NetworkHost, Driver: DriverHost, Predefined: true, Created: now},
		{Name: api.NetworkNone, Driver: DriverNull, Predefined: true, Created: now},
	}
}

// Docker's driver options of bridge networks that vmbox reads.
const (
	optBridgeName     = "com.docker.network.bridge.name"
	optMTU            = "com.docker.network.driver.mtu"
	optMasquerade     = "com.docker.network.bridge.enable_ip_masquerade"
	optICC            = "com.docker.network.bridge.enable_icc"
	optDefaultBridge  = "com.docker.network.bridge.default_bridge"
	optHostBinding    = "com.docker.network.bridge.host_binding_ipv4"
	defaultMTU        = 1500
	maxInterfaceBytes = 15 // IFNAMSIZ less the NUL
)

func (m *Manager) add(n Network) *netState {
	st := &netState{Network: n, endpoints: map[string]*endpointState{}}
	if n.Driver == DriverBridge {
		st.pool = newPool(n.Subnet, n.IPRange, n.Gateway)
	}
	if st.user() {
		st.res = newResolver(n.Name, n.Subnet, n.Internal, m.fwd, m.peers, m.log)
	}
	m.nets[n.ID] = st
	return st
}

func (m *Manager) byName(name string) *netState {
	for _, n := range m.nets {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// lock takes the Manager for a change.
func (m *Manager) lock(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if m.closed {
		<-m.sem
		return ErrClosed
	}
	return nil
}

func (m *Manager) unlock() { <-m.sem }

// rlock takes the Manager for reading; reads are quick and not
// cancellable.
func (m *Manager) rlock() { m.sem <- struct{}{} }

// find resolves ref: a name, a full ID or a unique ID prefix, as Docker
// does. Call with the Manager locked.
func (m *Manager) find(ref string) (*netState, error) {
	if ref == "" {
		return nil, errorf(ErrNotFound, "network %s not found", ref)
	}
	if n, ok := m.nets[ref]; ok {
		return n, nil
	}
	if n := m.byName(ref); n != nil {
		return n, nil
	}
	var found []*netState
	for id, n := range m.nets {
		if strings.HasPrefix(id, ref) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, errorf(ErrNotFound, "network %s not found", ref)
	case 1:
		return found[0], nil
	}
	return nil, errorf(ErrInvalid, "network %s is ambiguous (%d matches found based on ID prefix)", ref, len(found))
}

// Get returns the network ref names: its name, full ID or a unique prefix
// of its ID.
func (m *Manager) Get(ref string) (Network, error) {
	m.rlock()
	defer m.unlock()
	n, err := m.find(ref)
	if err != nil {
		return Network{}, err
	}
	return n.Network.clone(), nil
}

// List returns every network, in no particular order.
func (m *Manager) List() []Network {
	m.rlock()
	defer m.unlock()
	out := make([]Network, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, n.Network.clone())
	}
	return out
}

// Resource returns the network ref names as Docker's API shows it, with
// the containers on it now.
func (m *Manager) Resource(ref string) (api.NetworkResource, error) {
	m.rlock()
	defer m.unlock()
	n, err := m.find(ref)
	if err != nil {
		return api.NetworkResource{}, err
	}
	r := api.NetworkResource{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
		Internal: n.Internal,
		IPAM: api.IPAM{
			Driver:  "default",
			Options: map[string]string{},
			Config:  []api.IPAMConfig{},
		},
		Containers: map[string]api.NetworkContainer{},
		Options:    maps.Clone(n.Options),
		Labels:     maps.Clone(n.Labels),
	}
	if r.Options == nil {
		r.Options = map[string]string{}
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if n.Subnet.IsValid() {
		c := api.IPAMConfig{Subnet: n.Subnet.String(), Gateway: n.Gateway.String()}
		if n.IPRange.IsValid() {
			c.IPRange = n.IPRange.String()
		}
		r.IPAM.Config = append(r.IPAM.Config, c)
	}
	for id, ep := range n.endpoints {
		r.Containers[id] = ep.resourceContainer()
	}
	return r, nil
}

// Create makes a user network of the bridge driver. Its bridge, rules and
// DNS server come with its first container.
func (m *Manager) Create(ctx context.Context, a api.NetworkCreateArgs) (Network, error) {
	n, err := parseCreate(a)
	if err != nil {
		return Network{}, err
	}
	if err := m.lock(ctx); err != nil {
		return Network{}, err
	}
	defer m.unlock()
	if m.byName(n.Name) != nil {
		return Network{}, errorf(ErrConflict, "network with name %s already exists", n.Name)
	}
	if n.Bridge != "" {
		// Asked for by name: it must be nobody else's interface.
		for _, o := range m.nets {
			if o.Bridge == n.Bridge {
				return Network{}, errorf(ErrConflict, "bridge name %s is already used by network %s", n.Bridge, o.Name)
			}
		}
		if linkExists(n.Bridge) {
			return Network{}, errorf(ErrConflict, "an interface named %s already exists", n.Bridge)
		}
	}
	taken, err := m.takenPrefixes()
	if err != nil {
		return Network{}, err
	}
	if n.Subnet.IsValid() {
		for _, t := range taken {
			if t.prefix.Overlaps(n.Subnet) {
				return Network{}, errorf(ErrInvalid, "Pool overlaps with other one on this address space (%s overlaps %s of %s)", n.Subnet, t.prefix, t.owner)
			}
		}
	} else {
		prefixes := make([]netip.Prefix, len(taken))
		for i, t := range taken {
			prefixes[i] = t.prefix
		}
		if n.Subnet, err = pickPool(prefixes); err != nil {
			return Network{}, err
		}
	}
	if !n.Gateway.IsValid() {
		n.Gateway = n.Subnet.Addr().Next()
	}
	n.ID = m.freshID()
	if n.Bridge == "" {
		n.Bridge = "br-" + n.ID[:12]
	}
	n.Created = time.Now()
	if err := m.save(n); err != nil {
		return Network{}, err
	}
	m.add(n)
	m.updateSubnets()
	return n.clone(), nil
}

// freshID is a network ID no network has and no network's name is.
func (m *Manager) freshID() string {
	for {
		id := newID()
		if _, ok := m.nets[id]; !ok && m.byName(id) == nil && m.byName(id[:12]) == nil {
			return id
		}
	}
}

// takenPrefix is an address range a new network must not overlap, and
// whose it is, for the message.
type takenPrefix struct {
	prefix netip.Prefix
	owner  string
}

// takenPrefixes are the networks' subnets and those of the VM's own
// interfaces, read now: DHCP or the VM's backend decide them. Call with
// the Manager locked.
func (m *Manager) takenPrefixes() ([]takenPrefix, error) {
	var out []takenPrefix
	ours := map[string]bool{}
	for _, n := range m.nets {
		if n.Subnet.IsValid() {
			out = append(out, takenPrefix{n.Subnet, "network " + n.Name})
		}
		if n.Bridge != "" {
			ours[n.Bridge] = true
		}
	}
	ifaces, err := interfacePrefixes()
	if err != nil {
		return nil, fmt.Errorf("read the VM's addresses: %w", err)
	}
	for _, p := range ifaces {
		if !ours[p.link] {
			out = append(out, takenPrefix{p.prefix, "interface " + p.link})
		}
	}
	return out, nil
}

// Remove removes a user network that has no endpoint: its bridge, rules,
// DNS server and file.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.unlock()
	n, err := m.find(ref)
	if err != nil {
		return err
	}
	return m.remove(n)
}

// remove removes n. Call with the Manager locked.
func (m *Manager) remove(n *netState) error {
	if n.Predefined {
		return errorf(ErrForbidden, "%s is a pre-defined network and cannot be removed", n.Name)
	}
	if len(n.endpoints) > 0 {
		return errorf(ErrInUse, "error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	}
	m.stopDNS(n)
	// The bridge may be left from an earlier run even when this one
	// never used the network.
	if err := deleteLink(n.Bridge); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	if err := m.unsave(n.ID); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	delete(m.nets, n.ID)
	m.updateSubnets()
	if n.up {
		if err := m.syncRules(); err != nil {
			// The network is gone; its stale rules go with the next
			// change that succeeds.
			m.log.Warn("nftables after removing a network", "network", n.Name, "err", err)
		}
	}
	return nil
}

// Prune removes the user networks without endpoints and returns their
// names, sorted.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.unlock()
	var names []string
	var errs []error
	for _, n := range m.nets {
		if n.Predefined || len(n.endpoints) > 0 {
			continue
		}
		if err := m.remove(n); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names, errors.Join(errs...)
}

// Close stops the DNS servers. Bridges and rules stay for the next
// Manager, which takes them over.
func (m *Manager) Close() error {
	m.rlock()
	defer m.unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for _, n := range m.nets {
		m.stopDNS(n)
	}
	return m.dirLock.Close()
}

// updateSubnets tells the DNS forwarder which nameservers are containers.
// Call with the Manager locked.
func (m *Manager) updateSubnets() {
	var s []netip.Prefix
	for _, n := range m.nets {
		if n.Subnet.IsValid() {
			s = append(s, n.Subnet)
		}
	}
	m.fwd.ours.Store(&s)
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}
