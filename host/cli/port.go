package cli

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
)

func (a *app) portCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List a container's published ports, or where one port is published",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			var key string
			if len(args) == 2 {
				port, proto, err := api.ParseExposedPort(strings.ToLower(args[1]))
				if err != nil {
					return usageError("invalid port %q: use PORT or PORT/tcp or PORT/udp", args[1])
				}
				key = strconv.Itoa(int(port)) + "/" + proto
			}
			var found []api.ContainerInspect
			if err := a.call(cmd.Context(), api.OpInspect, api.InspectArgs{Names: []string{name}, Type: "container"}, &found); err != nil {
				return err
			}
			if len(found) != 1 {
				return &ExitError{Code: 1, Message: "no such container: " + name}
			}
			return writePorts(a.stdout, a.stderr, name, key, found[0].NetworkSettings.Ports)
		},
	}
}

// writePorts is docker port's output: every published port's mappings
// when key is "", else the host addresses key ("80/tcp") is published on,
// failing as docker does when it is not.
func writePorts(stdout, stderr io.Writer, container, key string, ports map[string][]api.PortMapping) error {
	if key == "" {
		for _, line := range portMappingLines(ports) {
			fmt.Fprintln(stdout, line)
		}
		return nil
	}
	addrs := publishedAddresses(ports[key])
	if len(addrs) == 0 {
		// Docker's own wording, which scripts look for.
		fmt.Fprintf(stderr, "Error: No public port '%s' published for %s\n", key, container)
		return &ExitError{Code: 1}
	}
	for _, addr := range addrs {
		fmt.Fprintln(stdout, addr)
	}
	return nil
}

// portMappingLines are docker port's lines for every published port,
// "80/tcp -> 127.0.0.1:8080", ordered by port, then protocol.
func portMappingLines(ports map[string][]api.PortMapping) []string {
	keys := make([]string, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePortKeys)
	var lines []string
	for _, k := range keys {
		for _, addr := range publishedAddresses(ports[k]) {
			lines = append(lines, k+" -> "+addr)
		}
	}
	return lines
}

// publishedAddresses are the host addresses of a port's mappings,
// "127.0.0.1:8080" or "[::1]:8080".
func publishedAddresses(mappings []api.PortMapping) []string {
	out := make([]string, 0, len(mappings))
	for _, m := range mappings {
		out = append(out, net.JoinHostPort(m.HostIP, m.HostPort))
	}
	return out
}

// comparePortKeys orders "80/tcp"-style keys by port number, then protocol.
func comparePortKeys(a, b string) int {
	aPort, aProto, _ := strings.Cut(a, "/")
	bPort, bProto, _ := strings.Cut(b, "/")
	an, aErr := strconv.Atoi(aPort)
	bn, bErr := strconv.Atoi(bPort)
	if aErr != nil || bErr != nil {
		return strings.Compare(a, b)
	}
	return cmp.Or(cmp.Compare(an, bn), strings.Compare(aProto, bProto))
}

// formatPorts is docker ps's PORTS cell: published ports as
// "127.0.0.1:8080->80/tcp", exposed ones as "80/tcp", and consecutive ports
// that map alike as one range ("127.0.0.1:8000-8002->8000-8002/tcp").
func formatPorts(ports []api.PortSummary) string {
	sorted := slices.Clone(ports)
	// Alike ports next to each other, so each range is one run.
	slices.SortFunc(sorted, func(a, b api.PortSummary) int {
		return cmp.Or(compareHostIPs(a.IP, b.IP), strings.Compare(a.Type, b.Type),
			cmp.Compare(min(a.PublicPort, 1), min(b.PublicPort, 1)), // exposed-only first
			cmp.Compare(a.PrivatePort, b.PrivatePort), cmp.Compare(a.PublicPort, b.PublicPort))
	})
	var ranges []portRange
	for _, p := range sorted {
		if n := len(ranges); n > 0 {
			if last := &ranges[n-1]; last.last == p {
				continue // listed twice
			} else if last.continuedBy(p) {
				last.last = p
				continue
			}
		}
		ranges = append(ranges, portRange{first: p, last: p})
	}
	slices.SortStableFunc(ranges, func(a, b portRange) int {
		return cmp.Or(cmp.Compare(a.first.PrivatePort, b.first.PrivatePort), strings.Compare(a.first.Type, b.first.Type),
			compareHostIPs(a.first.IP, b.first.IP))
	})
	cells := make([]string, len(ranges))
	for i, r := range ranges {
		cells[i] = r.String()
	}
	return strings.Join(cells, ", ")
}

// portRange is a run of consecutive container ports published (or only
// exposed) alike.
type portRange struct{ first, last api.PortSummary }

func isPublished(p api.PortSummary) bool { return p.PublicPort != 0 }

// continuedBy reports whether p is the next port of the run.
func (r portRange) continuedBy(p api.PortSummary) bool {
	l := r.last
	if p.IP != l.IP || p.Type != l.Type || isPublished(p) != isPublished(l) || p.PrivatePort != l.PrivatePort+1 {
		return false
	}
	return !isPublished(p) || p.PublicPort == l.PublicPort+1
}

func (r portRange) String() string {
	private := portSpan(r.first.PrivatePort, r.last.PrivatePort) + "/" + r.first.Type
	if !isPublished(r.first) {
		return private
	}
	public := portSpan(r.first.PublicPort, r.last.PublicPort)
	if r.first.IP != "" {
		public = net.JoinHostPort(r.first.IP, public)
	}
	return public + "->" + private
}

func portSpan(first, last uint16) string {
	if first == last {
		return strconv.Itoa(int(first))
	}
	return strconv.Itoa(int(first)) + "-" + strconv.Itoa(int(last))
}

// compareHostIPs orders addresses IPv4 first, numerically; what does not
// parse comes after, as text.
func compareHostIPs(a, b string) int {
	aAddr, aErr := netip.ParseAddr(a)
	bAddr, bErr := netip.ParseAddr(b)
	switch {
	case aErr == nil && bErr == nil:
		return aAddr.Compare(bAddr)
	case aErr == nil:
		return -1
	case bErr == nil:
		return 1
	}
	return strings.Compare(a, b)
}
