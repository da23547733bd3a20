package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Network operations, shaped like the Docker API's /networks endpoints.
const (
	OpNetworkCreate     = "network-create"     // NetworkCreateArgs -> NetworkCreateReply
	OpNetworkList       = "network-ls"         // -> []NetworkResource
	OpNetworkInspect    = "network-inspect"    // NamesArgs -> []NetworkResource
	OpNetworkRemove     = "network-rm"         // NamesArgs; removes each, one line per failure
	OpNetworkConnect    = "network-connect"    // NetworkConnectArgs
	OpNetworkDisconnect = "network-disconnect" // NetworkDisconnectArgs
	OpNetworkPrune      = "network-prune"      // -> NetworkPruneReply
)

// Network modes of ContainerConfig.NetworkMode besides a network's name.
const (
	NetworkBridge = "bridge" // the default network: Docker's docker0
	NetworkHost   = "host"   // the VM's own network namespace
	NetworkNone   = "none"   // loopback only
	// NetworkContainerPrefix + a container's name or ID shares that
	// container's network namespace.
	NetworkContainerPrefix = "container:"
)

// NamesArgs names objects (networks, volumes) by name, ID or ID prefix.
type NamesArgs struct {
	Names []string `json:"names"`
}

// NetworkCreateArgs is OpNetworkCreate, shaped like Docker's
// NetworkCreateRequest (one IPv4 pool).
type NetworkCreateArgs struct {
	Name     string            `json:"Name"`
	Driver   string            `json:"Driver,omitempty"` // "bridge" (the only one) or ""
	Subnet   string            `json:"Subnet,omitempty"` // CIDR; "" picks a free one
	Gateway  string            `json:"Gateway,omitempty"`
	IPRange  string            `json:"IPRange,omitempty"` // CIDR inside Subnet that containers get addresses from
	Internal bool              `json:"Internal,omitempty"`
	Labels   map[string]string `json:"Labels,omitempty"`
	Options  map[string]string `json:"Options,omitempty"`
	// CheckDuplicate is implied: names are unique, as in current Docker.
}

// NetworkCreateReply answers OpNetworkCreate.
type NetworkCreateReply struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning"`
}

// NetworkResource is a network as Docker's /networks/{id} shows it.
type NetworkResource struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"`  // "local"
	Driver     string                      `json:"Driver"` // "bridge", "host", "null"
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	Containers map[string]NetworkContainer `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
}

// IPAM is a network's address management.
type IPAM struct {
	Driver  string            `json:"Driver"` // "default"
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// IPAMConfig is one address pool of a network.
type IPAMConfig struct {
	Subnet  string `json:"Subnet,omitempty"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

// NetworkContainer is one container's endpoint as a network lists it.
type NetworkContainer struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"` // CIDR: "172.18.0.2/16"
	IPv6Address string `json:"IPv6Address"`
}

// NetworkConnectArgs is OpNetworkConnect.
type NetworkConnectArgs struct {
	Network     string   `json:"network"`
	Container   string   `json:"container"`
	Aliases     []string `json:"aliases,omitempty"`
	IPv4Address string   `json:"ipv4,omitempty"`
}

// NetworkDisconnectArgs is OpNetworkDisconnect.
type NetworkDisconnectArgs struct {
	Network   string `json:"network"`
	Container string `json:"container"`
	Force     bool   `json:"force,omitempty"`
}

// NetworkPruneReply answers OpNetworkPrune.
type NetworkPruneReply struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// EndpointSettings is a container's place on one network, as Docker's
// container inspect shows it under NetworkSettings.Networks.
type EndpointSettings struct {
	Aliases     []string `json:"Aliases"`
	NetworkID   string   `json:"NetworkID"`
	EndpointID  string   `json:"EndpointID"`
	Gateway     string   `json:"Gateway"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	MacAddress  string   `json:"MacAddress"`
	DNSNames    []string `json:"DNSNames"`
}

// NetworkSettings is the network part of a container's inspect.
type NetworkSettings struct {
	// Ports maps "80/tcp" to the host addresses it is published on (nil
	// when exposed but not published), as Docker's inspect does.
	Ports       map[string][]PortMapping    `json:"Ports"`
	SandboxKey  string                      `json:"SandboxKey"`
	IPAddress   string                      `json:"IPAddress"` // on the default bridge
	IPPrefixLen int                         `json:"IPPrefixLen"`
	Gateway     string                      `json:"Gateway"`
	MacAddress  string                      `json:"MacAddress"`
	Networks    map[string]EndpointSettings `json:"Networks"`
}

// PortMapping is one host address a container port is published on, in
// the Docker API's spelling (strings).
type PortMapping struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// PortSummary is a published or exposed port in OpPs's rows, as Docker's
// /containers/json lists it.
type PortSummary struct {
	IP          string `json:"IP,omitempty"`
	PrivatePort uint16 `json:"PrivatePort"`
	PublicPort  uint16 `json:"PublicPort,omitempty"`
	Type        string `json:"Type"`
}

// PortBinding publishes one container port on the host.
type PortBinding struct {
	// HostIP is the host address to listen on: "" means loopback (both
	// 127.0.0.1 and ::1), never every interface; "0.0.0.0" or "::" must
	// be asked for.
	HostIP string `json:"HostIp,omitempty"`
	// HostPort 0 takes any free port.
	HostPort      uint16 `json:"HostPort,omitempty"`
	ContainerPort uint16 `json:"ContainerPort"`
	Proto         string `json:"Proto"` // "tcp" or "udp"
}

// Key is Docker's name of the container side: "80/tcp".
func (b PortBinding) Key() string { return strconv.Itoa(int(b.ContainerPort)) + "/" + b.Proto }

// String is the binding as `docker ps` shows it: "127.0.0.1:8080->80/tcp".
func (b PortBinding) String() string {
	return netip.AddrPortFrom(b.hostAddr(), b.HostPort).String() + "->" + b.Key()
}

func (b PortBinding) hostAddr() netip.Addr {
	if a, err := netip.ParseAddr(b.HostIP); err == nil {
		return a
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// ParsePortSpec parses one -p/--publish value:
// [[HOSTIP:][HOSTPORT[-HOSTPORT]]:]CTRPORT[-CTRPORT][/tcp|/udp]. An IPv6
// HOSTIP is written in brackets. A range of container ports maps onto a
// host range of the same length, or onto any free ports when the host
// port is empty.
func ParsePortSpec(spec string) ([]PortBinding, error) {
	bad := func(why string) ([]PortBinding, error) {
		return nil, fmt.Errorf("invalid port specification %q: %s", spec, why)
	}
	rest, proto := spec, "tcp"
	if i := strings.LastIndexByte(spec, '/'); i >= 0 {
		rest, proto = spec[:i], strings.ToLower(spec[i+1:])
		if proto != "tcp" && proto != "udp" {
			return bad("protocol must be tcp or udp")
		}
	}
	var hostIP, hostPorts, ctrPorts string
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]:")
		if end < 0 {
			return bad("unterminated IPv6 address")
		}
		hostIP = rest[1:end]
		hostPorts, ctrPorts, _ = strings.Cut(rest[end+2:], ":")
		if !strings.Contains(rest[end+2:], ":") {
			return bad("want [HOSTIP]:HOSTPORT:CONTAINERPORT")
		}
	default:
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPorts = parts[0]
		case 2:
			hostPorts, ctrPorts = parts[0], parts[1]
		case 3:
			hostIP, hostPorts, ctrPorts = parts[0], parts[1], parts[2]
		default:
			return bad("too many colons (write an IPv6 address in brackets)")
		}
	}
	if hostIP != "" {
		a, err := netip.ParseAddr(hostIP)
		if err != nil || a.Zone() != "" {
			return bad(fmt.Sprintf("%q is not an IP address", hostIP))
		}
		hostIP = a.Unmap().String()
	}
	cLo, cHi, err := parsePortRange(ctrPorts)
	if err != nil {
		return bad("container port: " + err.Error())
	}
	var hLo, hHi uint16
	if hostPorts != "" {
		if hLo, hHi, err = parsePortRange(hostPorts); err != nil {
			return bad("host port: " + err.Error())
		}
		if hHi-hLo != cHi-cLo && !(hLo == hHi && cLo == cHi) {
			return bad("host and container port ranges differ in length")
		}
	}
	out := make([]PortBinding, 0, int(cHi-cLo)+1)
	for p := int(cLo); p <= int(cHi); p++ {
		b := PortBinding{HostIP: hostIP, ContainerPort: uint16(p), Proto: proto}
		if hostPorts != "" {
			b.HostPort = hLo + uint16(p-int(cLo))
		}
		out = append(out, b)
	}
	return out, nil
}

func parsePortRange(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, fmt.Errorf("missing")
	}
	a, b, isRange := strings.Cut(s, "-")
	lo, err = parsePort(a)
	if err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("range %s ends before it starts", s)
		}
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// ParseExposedPort parses an image's ExposedPorts key ("80/tcp", "53/udp",
// "8080") into the container port and protocol.
func ParseExposedPort(key string) (uint16, string, error) {
	num, proto, _ := strings.Cut(key, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return 0, "", fmt.Errorf("exposed port %q: protocol must be tcp or udp", key)
	}
	p, err := parsePort(num)
	if err != nil {
		return 0, "", fmt.Errorf("exposed port %q: %w", key, err)
	}
	return p, proto, nil
}

// PublishRequest is the payload (JSON, in a PublishMessage) of the
// agent's request to the host process to publish a container's ports.
type PublishRequest struct {
	Container string `json:"container"` // ID
	// IP is the container's address the ports forward to.
	IP string `json:"ip,omitempty"`
	// Ports to listen on; HostPort 0 is replaced by the port taken.
	Ports []PortBinding `json:"ports"`
}

// PublishReply answers a PublishRequest: the bindings as made, or why
// none was (nothing stays bound then).
type PublishReply struct {
	Ports []PortBinding `json:"ports,omitempty"`
	Error string        `json:"error,omitempty"`
}

// ForwardPort is the port of the agent's forwarding gateway, next to
// AgentPort on the same transport: each connection carries one published
// port's connection (or UDP flow) from the host into the VM, after a
// header naming the target and proving the host knows the token it gave
// the agent over SSH.
const ForwardPort = 2223

// DockerStream is the stream target (in the forwarding gateway's header)
// that joins a connection to the guest's Docker API socket: the host
// process carries Docker clients this way, as plain TCP that the guest
// need not decrypt.
const DockerStream = "docker"
