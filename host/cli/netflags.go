package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
)

// hostGatewayWord stands for the host's address in --add-host.
const hostGatewayWord = "host-gateway"

// networkFlags are run's networking flags, as docker run spells them.
type networkFlags struct {
	network    string
	aliases    []string
	publish    []string
	publishAll bool
	expose     []string
	addHosts   []string
	dns        []string
	dnsSearch  []string
	dnsOptions []string
}

// addNetworkFlags registers the networking flags on c, with Docker's
// older spellings --net and --net-alias as hidden synonyms.
func addNetworkFlags(c *cobra.Command, f *networkFlags) {
	fl := c.Flags()
	fl.StringVar(&f.network, "network", "", "network to join: bridge (default), host, none, container:NAME or a network's name")
	fl.StringVar(&f.network, "net", "", "same as --network")
	fl.Var(&appendedStrings{list: &f.aliases}, "network-alias", "another DNS name of the container on its network (repeatable)")
	fl.Var(&appendedStrings{list: &f.aliases}, "net-alias", "same as --network-alias")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a container port on the host: [[IP:][HOSTPORT]:]PORT[/udp] (repeatable; IP defaults to loopback)")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish every exposed port on a free host port")
	fl.StringArrayVar(&f.expose, "expose", nil, "expose a port or range: 80, 80/udp, 8000-8002/tcp (repeatable)")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "add NAME:IP to /etc/hosts; IP may be host-gateway (repeatable)")
	fl.StringArrayVar(&f.dns, "dns", nil, "DNS server address (repeatable)")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domain (repeatable)")
	fl.StringArrayVar(&f.dnsOptions, "dns-option", nil, "resolv.conf option such as ndots:2 (repeatable)")
	_ = fl.MarkHidden("net")
	_ = fl.MarkHidden("net-alias")
}

// appendedStrings is a repeatable string flag whose values go to a list
// that several flags may share.
type appendedStrings struct{ list *[]string }

func (s *appendedStrings) Set(v string) error {
	*s.list = append(*s.list, v)
	return nil
}

// String is empty for no values, so that help shows no default.
func (s *appendedStrings) String() string {
	if s.list == nil || len(*s.list) == 0 {
		return ""
	}
	return "[" + strings.Join(*s.list, ",") + "]"
}

func (s *appendedStrings) Type() string { return "stringArray" }

// apply checks the flags and fills cfg's networking fields; a bad value
// is a usage error naming the flag.
func (f *networkFlags) apply(cfg *api.ContainerConfig) error {
	mode, err := networkMode(f.network)
	if err != nil {
		return err
	}
	cfg.NetworkMode = mode
	for _, alias := range f.aliases {
		if alias == "" || strings.ContainsAny(alias, " \t") {
			return usageError("invalid --network-alias %q: use a DNS name", alias)
		}
	}
	cfg.NetworkAliases = f.aliases
	for _, spec := range f.publish {
		bindings, err := api.ParsePortSpec(spec)
		if err != nil {
			return usageError("%v", err)
		}
		cfg.PortBindings = append(cfg.PortBindings, bindings...)
	}
	cfg.PublishAllPorts = f.publishAll
	for _, spec := range f.expose {
		ports, err := expandExpose(spec)
		if err != nil {
			return err
		}
		cfg.ExposedPorts = append(cfg.ExposedPorts, ports...)
	}
	for _, h := range f.addHosts {
		line, err := parseExtraHost(h)
		if err != nil {
			return err
		}
		cfg.ExtraHosts = append(cfg.ExtraHosts, line)
	}
	for _, server := range f.dns {
		addr, err := netip.ParseAddr(server)
		if err != nil {
			return usageError("invalid --dns %q: use an IP address", server)
		}
		cfg.DNS = append(cfg.DNS, addr.String())
	}
	for _, domain := range f.dnsSearch {
		if domain == "" || len(domain) > 253 || strings.ContainsAny(domain, " \t") {
			return usageError("invalid --dns-search %q: use a domain name", domain)
		}
	}
	cfg.DNSSearch = f.dnsSearch
	for _, opt := range f.dnsOptions {
		if opt == "" || strings.ContainsAny(opt, " \t") {
			return usageError("invalid --dns-option %q: use one resolv.conf option such as ndots:2", opt)
		}
	}
	cfg.DNSOptions = f.dnsOptions
	return nil
}

// networkMode is --network's value as sent: the default bridge when not
// given, otherwise what the user wrote (host, none, container:NAME, a
// network's name or ID), which the engine resolves.
func networkMode(network string) (string, error) {
	switch {
	case network == "":
		return api.NetworkBridge, nil
	case network == api.NetworkContainerPrefix:
		return "", usageError("invalid --network %q: name the container, as in container:NAME", network)
	case strings.ContainsAny(network, " \t\n"):
		return "", usageError("invalid --network %q: a network name has no spaces", network)
	}
	return network, nil
}

// expandExpose turns one --expose value (80, 80/udp, 8000-8002/tcp) into
// the ports it names, as "80/tcp".
func expandExpose(spec string) ([]string, error) {
	bad := func(why string) ([]string, error) {
		return nil, usageError("invalid --expose %q: %s", spec, why)
	}
	ports, proto, _ := strings.Cut(spec, "/")
	proto = strings.ToLower(proto)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp":
	default:
		return bad("protocol must be tcp or udp")
	}
	loText, hiText, isRange := strings.Cut(ports, "-")
	lo, err := exposedPortNumber(loText)
	if err != nil {
		return bad(err.Error())
	}
	hi := lo
	if isRange {
		if hi, err = exposedPortNumber(hiText); err != nil {
			return bad(err.Error())
		}
		if hi < lo {
			return bad("the range ends before it starts")
		}
	}
	out := make([]string, 0, hi-lo+1)
	for p := lo; p <= hi; p++ {
		out = append(out, strconv.Itoa(p)+"/"+proto)
	}
	return out, nil
}

func exposedPortNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// parseExtraHost checks one --add-host value, NAME:IP or NAME=IP (an IPv6
// address may be bracketed; IP may be host-gateway), and returns it as the
// engine takes it: "NAME:IP".
func parseExtraHost(spec string) (string, error) {
	name, ip, ok := strings.Cut(spec, "=")
	if !ok {
		name, ip, ok = strings.Cut(spec, ":")
	}
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return "", usageError("invalid --add-host %q: use NAME:IP", spec)
	}
	if ip == hostGatewayWord {
		return name + ":" + ip, nil
	}
	addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]"))
	if err != nil {
		return "", usageError("invalid --add-host %q: %q is neither an IP address nor %s", spec, ip, hostGatewayWord)
	}
	return name + ":" + addr.String(), nil
}
