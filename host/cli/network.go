package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

func (a *app) networkCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "network COMMAND",
		Short: "Manage the networks containers join",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return &ExitError{Code: 1, Message: fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())}
		},
	}
	c.AddCommand(a.networkCreateCommand(), a.networkListCommand(), a.networkInspectCommand(), a.networkRemoveCommand(),
		a.networkConnectCommand(), a.networkDisconnectCommand(), a.networkPruneCommand())
	return c
}

// networkCreateFlags are network create's flags, as docker's.
type networkCreateFlags struct {
	driver, subnet, gateway, ipRange string
	internal                         bool
	labels, options                  []string
}

func (a *app) networkCreateCommand() *cobra.Command {
	var f networkCreateFlags
	c := &cobra.Command{
		Use:   "create [flags] NETWORK",
		Short: "Create a network and print its ID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.request(args[0])
			if err != nil {
				return err
			}
			cl, err := a.connectOrStart(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer cl.Close()
			var created api.NetworkCreateReply
			if err := cl.Call(cmd.Context(), api.OpNetworkCreate, req, &created); err != nil {
				return err
			}
			if created.Warning != "" {
				fmt.Fprintln(a.stderr, "WARNING: "+created.Warning)
			}
			fmt.Fprintln(a.stdout, created.ID)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&f.driver, "driver", "d", api.NetworkBridge, "driver of the network")
	fl.StringVar(&f.subnet, "subnet", "", "subnet in CIDR form, e.g. 172.20.0.0/16 (default: a free one)")
	fl.StringVar(&f.gateway, "gateway", "", "gateway address inside --subnet (default: its first address)")
	fl.StringVar(&f.ipRange, "ip-range", "", "part of --subnet (CIDR) that containers get addresses from")
	fl.BoolVar(&f.internal, "internal", false, "no traffic in or out of the network, only between its containers")
	fl.StringArrayVar(&f.labels, "label", nil, "set a label KEY=VALUE (repeatable)")
	fl.StringArrayVarP(&f.options, "opt", "o", nil, "set a driver option KEY=VALUE (repeatable)")
	return c
}

// request checks the flags and builds the create request for name.
func (f networkCreateFlags) request(name string) (api.NetworkCreateArgs, error) {
	req := api.NetworkCreateArgs{Name: name, Driver: f.driver, Internal: f.internal}
	var subnet netip.Prefix
	if f.subnet != "" {
		p, err := canonicalPrefix("--subnet", f.subnet)
		if err != nil {
			return req, err
		}
		subnet, req.Subnet = p, p.String()
	}
	if f.gateway != "" {
		gw, err := netip.ParseAddr(f.gateway)
		if err != nil {
			return req, usageError("invalid --gateway %q: use an IP address", f.gateway)
		}
		if !subnet.IsValid() || !subnet.Contains(gw) {
			return req, usageError("invalid --gateway %s: it must be inside --subnet", f.gateway)
		}
		req.Gateway = gw.String()
	}
	if f.ipRange != "" {
		r, err := canonicalPrefix("--ip-range", f.ipRange)
		if err != nil {
			return req, err
		}
		if !subnet.IsValid() || !subnet.Contains(r.Addr()) || r.Bits() < subnet.Bits() {
			return req, usageError("invalid --ip-range %s: it must be inside --subnet", f.ipRange)
		}
		req.IPRange = r.String()
	}
	var err error
	if req.Labels, err = keyValues("--label", f.labels); err != nil {
		return req, err
	}
	if req.Options, err = keyValues("--opt", f.options); err != nil {
		return req, err
	}
	return req, nil
}

// canonicalPrefix parses a CIDR flag value, refusing host bits as Docker
// does ("172.20.0.1/16" is 172.20.0.0/16 written carelessly).
func canonicalPrefix(flag, value string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(value)
	if err != nil {
		return p, usageError("invalid %s %q: use CIDR notation such as 172.20.0.0/16", flag, value)
	}
	if p.Masked() != p {
		return p, usageError("invalid %s %s: it should be %s", flag, value, p.Masked())
	}
	return p, nil
}

// keyValues turns repeated KEY=VALUE flag values into a map; KEY alone
// means an empty value, as in Docker.
func keyValues(flag string, list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, usageError("invalid %s %q: use KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func (a *app) networkListCommand() *cobra.Command {
	var out outputFlags
	var noTrunc bool
	var filters []string
	c := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			filter, err := parseNetworkFilter(filters)
			if err != nil {
				return err
			}
			var list []api.NetworkResource
			if err := a.call(cmd.Context(), api.OpNetworkList, nil, &list); err != nil {
				return err
			}
			return printNetworks(a.stdout, out, noTrunc, filter.apply(list))
		},
	}
	c.Flags().StringArrayVarP(&filters, "filter", "f", nil, "show only networks that match: name=, id=, driver=, label=KEY[=VALUE] (repeatable)")
	c.Flags().BoolVar(&noTrunc, "no-trunc", false, "show whole network IDs")
	addOutputFlags(c, &out, true)
	return c
}

// printNetworks writes network ls's output for list, sorted by name.
func printNetworks(w io.Writer, out outputFlags, noTrunc bool, list []api.NetworkResource) error {
	list = append([]api.NetworkResource{}, list...)
	slices.SortFunc(list, func(a, b api.NetworkResource) int { return strings.Compare(a.Name, b.Name) })
	id := func(n api.NetworkResource) string {
		if noTrunc {
			return n.ID
		}
		return shortID(n.ID)
	}
	return printList(w, out, list, id, "NETWORK ID\tNAME\tDRIVER\tSCOPE", func(w io.Writer, n api.NetworkResource) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", id(n), n.Name, n.Driver, n.Scope)
	})
}

// networkFilter is network ls's --filter values by key. Values of one key
// are alternatives, except label's, which must all hold; keys must all
// hold.
type networkFilter struct {
	names, ids []*regexp.Regexp
	drivers    []string
	labels     []string
}

// parseNetworkFilter reads --filter KEY=VALUE values. name and id match
// anywhere as regular expressions, as Docker's do.
func parseNetworkFilter(values []string) (networkFilter, error) {
	var f networkFilter
	for _, kv := range values {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return f, usageError("invalid --filter %q: use KEY=VALUE", kv)
		}
		switch strings.ToLower(key) {
		case "name", "id":
			re, err := regexp.Compile(value)
			if err != nil {
				return f, usageError("invalid --filter %q: %v", kv, err)
			}
			if strings.ToLower(key) == "name" {
				f.names = append(f.names, re)
			} else {
				f.ids = append(f.ids, re)
			}
		case "driver":
			f.drivers = append(f.drivers, value)
		case "label":
			f.labels = append(f.labels, value)
		default:
			return f, usageError("invalid --filter %q: filter by name, id, driver or label", kv)
		}
	}
	return f, nil
}

// apply returns the networks of list that match every filter.
func (f networkFilter) apply(list []api.NetworkResource) []api.NetworkResource {
	out := make([]api.NetworkResource, 0, len(list))
	for _, n := range list {
		if f.matches(n) {
			out = append(out, n)
		}
	}
	return out
}

func (f networkFilter) matches(n api.NetworkResource) bool {
	anyMatch := func(res []*regexp.Regexp, s string) bool {
		return len(res) == 0 || slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(s) })
	}
	if !anyMatch(f.names, n.Name) || !anyMatch(f.ids, n.ID) {
		return false
	}
	if len(f.drivers) > 0 && !slices.Contains(f.drivers, n.Driver) {
		return false
	}
	return api.MatchLabels(n.Labels, f.labels)
}

func (a *app) networkInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			// One call per name, so that one missing network does not hide
			// the others, as in Docker.
			found := []json.RawMessage{}
			var missing []error
			for _, name := range args {
				var networks []json.RawMessage
				if err := cl.Call(cmd.Context(), api.OpNetworkInspect, api.NamesArgs{Names: []string{name}}, &networks); err != nil {
					missing = append(missing, err)
					continue
				}
				found = append(found, networks...)
			}
			doc, err := json.MarshalIndent(found, "", "    ")
			if err != nil {
				return fmt.Errorf("encode networks: %w", err)
			}
			fmt.Fprintf(a.stdout, "%s\n", doc)
			for _, err := range missing {
				fmt.Fprintln(a.stderr, "vmbox: "+firstLine(err.Error()))
			}
			if len(missing) > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
}

func (a *app) networkRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := a.forEachNamed(cmd.Context(), args, func(cl *sshclient.Client, name string) error {
				return cl.Call(cmd.Context(), api.OpNetworkRemove, api.NamesArgs{Names: []string{name}}, nil)
			})
			// A network that is unknown or in use is an engine refusal,
			// as every other network command reports it.
			var exit *ExitError
			if errors.As(err, &exit) && exit.Code == 1 {
				exit.Code = 125
			}
			return err
		},
	}
}

func (a *app) networkConnectCommand() *cobra.Command {
	var aliases []string
	var ip string
	c := &cobra.Command{
		Use:   "connect [flags] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.NetworkConnectArgs{Network: args[0], Container: args[1], Aliases: aliases}
			if ip != "" {
				addr, err := netip.ParseAddr(ip)
				if err != nil || !addr.Is4() {
					return usageError("invalid --ip %q: use an IPv4 address", ip)
				}
				req.IPv4Address = addr.String()
			}
			return a.call(cmd.Context(), api.OpNetworkConnect, req, nil)
		},
	}
	c.Flags().StringArrayVar(&aliases, "alias", nil, "another DNS name of the container on this network (repeatable)")
	c.Flags().StringVar(&ip, "ip", "", "IPv4 address to give the container on this network")
	return c
}

func (a *app) networkDisconnectCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "disconnect [flags] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd.Context(), api.OpNetworkDisconnect,
				api.NetworkDisconnectArgs{Network: args[0], Container: args[1], Force: force}, nil)
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "disconnect even when the container's endpoint is in a bad state")
	return c
}

const networkPruneWarning = "WARNING! This will remove all custom networks not used by at least one container."

func (a *app) networkPruneCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove every network no container uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				if !isTerminal(a.stdin) {
					return usageError("network prune asks before removing networks, and stdin is not a terminal: use -f to prune without asking")
				}
				ok, err := confirm(a.stdin, a.stdout, networkPruneWarning)
				if err != nil || !ok {
					return err
				}
			}
			var pruned api.NetworkPruneReply
			if err := a.call(cmd.Context(), api.OpNetworkPrune, nil, &pruned); err != nil {
				return err
			}
			writePruned(a.stdout, pruned)
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return c
}

// confirm shows warning, asks whether to go on and reads the answer: yes
// only for y or yes.
func confirm(in io.Reader, out io.Writer, warning string) (bool, error) {
	fmt.Fprint(out, warning+"\nAre you sure you want to continue? [y/N] ")
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(out)
		if err == io.EOF {
			return false, nil
		}
		return false, fmt.Errorf("read the answer: %w", err)
	}
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes", nil
}

// writePruned lists the pruned networks as Docker does; nothing when none were.
func writePruned(w io.Writer, pruned api.NetworkPruneReply) {
	if len(pruned.NetworksDeleted) == 0 {
		return
	}
	fmt.Fprintln(w, "Deleted Networks:")
	for _, name := range pruned.NetworksDeleted {
		fmt.Fprintln(w, name)
	}
}
