package cli

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
)

// runConfig parses args as vmbox run's flags and arguments would be and
// returns the container config they make.
func runConfig(t *testing.T, args ...string) (api.ContainerConfig, error) {
	t.Helper()
	var f runFlags
	c := &cobra.Command{Use: "run"}
	c.Flags().SetInterspersed(false)
	addRunFlags(c, &f)
	if err := c.Flags().Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.config(c.Flags().Args(), c.Flags().Changed("entrypoint"))
}

func TestRunNetworkFlagsFillTheConfig(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want func(*api.ContainerConfig) // changes from the defaults
	}{
		{"no flags: the default bridge", nil, func(*api.ContainerConfig) {}},
		{"-p host port", []string{"-p", "8080:80"}, func(c *api.ContainerConfig) {
			c.PortBindings = []api.PortBinding{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}
		}},
		{"-p container port only", []string{"-p", "80"}, func(c *api.ContainerConfig) {
			c.PortBindings = []api.PortBinding{{ContainerPort: 80, Proto: "tcp"}}
		}},
		{"--publish with IPv4 and udp", []string{"--publish", "0.0.0.0:5353:53/udp"}, func(c *api.ContainerConfig) {
			c.PortBindings = []api.PortBinding{{HostIP: "0.0.0.0", HostPort: 5353, ContainerPort: 53, Proto: "udp"}}
		}},
		{"-p bracketed IPv6", []string{"-p", "[::1]:8080:80"}, func(c *api.ContainerConfig) {
			c.PortBindings = []api.PortBinding{{HostIP: "::1", HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}
		}},
		{"-p ranges and repeats", []string{"-p", "9000-9001:8000-8001", "-p", "443"}, func(c *api.ContainerConfig) {
			c.PortBindings = []api.PortBinding{
				{HostPort: 9000, ContainerPort: 8000, Proto: "tcp"},
				{HostPort: 9001, ContainerPort: 8001, Proto: "tcp"},
				{ContainerPort: 443, Proto: "tcp"},
			}
		}},
		{"-P", []string{"-P"}, func(c *api.ContainerConfig) { c.PublishAllPorts = true }},
		{"--expose single, udp and range", []string{"--expose", "80", "--expose", "53/udp", "--expose", "8000-8002/tcp"}, func(c *api.ContainerConfig) {
			c.ExposedPorts = []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"}
		}},
		{"--network host", []string{"--network", "host"}, func(c *api.ContainerConfig) { c.NetworkMode = "host" }},
		{"--net none", []string{"--net", "none"}, func(c *api.ContainerConfig) { c.NetworkMode = "none" }},
		{"--network container:NAME", []string{"--network=container:web"}, func(c *api.ContainerConfig) { c.NetworkMode = "container:web" }},
		{"user network with aliases in both spellings", []string{"--network", "back", "--net-alias", "db", "--network-alias", "pg"}, func(c *api.ContainerConfig) {
			c.NetworkMode, c.NetworkAliases = "back", []string{"db", "pg"}
		}},
		{"--add-host forms", []string{"--add-host", "db:10.0.0.5", "--add-host", "v6=::1", "--add-host", "b6:[fe80::1]", "--add-host", "host.docker.internal:host-gateway"}, func(c *api.ContainerConfig) {
			c.ExtraHosts = []string{"db:10.0.0.5", "v6:::1", "b6:fe80::1", "host.docker.internal:host-gateway"}
		}},
		{"--dns and friends", []string{"--dns", "9.9.9.9", "--dns", "2620:fe::fe", "--dns-search", "example.test", "--dns-option", "ndots:2"}, func(c *api.ContainerConfig) {
			c.DNS, c.DNSSearch, c.DNSOptions = []string{"9.9.9.9", "2620:fe::fe"}, []string{"example.test"}, []string{"ndots:2"}
		}},
		{"-h and --domainname", []string{"-h", "box", "--domainname", "example.test"}, func(c *api.ContainerConfig) {
			c.Hostname, c.Domainname = "box", "example.test"
		}},
		{"other flags still work beside them", []string{"--name", "web", "-e", "A=1", "-p", "80"}, func(c *api.ContainerConfig) {
			c.Name, c.Env = "web", []string{"A=1"}
			c.PortBindings = []api.PortBinding{{ContainerPort: 80, Proto: "tcp"}}
		}},
		{"flags after the image belong to the command", []string{"-p", "80", "busybox", "nc", "-p", "81"}, func(c *api.ContainerConfig) {
			c.Cmd = []string{"nc", "-p", "81"}
			c.PortBindings = []api.PortBinding{{ContainerPort: 80, Proto: "tcp"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "busybox") {
				args = append(args, "busybox")
			}
			got, err := runConfig(t, args...)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			want := api.ContainerConfig{Image: "busybox", Pull: "missing", NetworkMode: api.NetworkBridge}
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestRunRejectsBadNetworkFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"-p", "99999:80"}, `invalid port specification "99999:80"`},
		{[]string{"-p", "80/sctp"}, "protocol must be tcp or udp"},
		{[]string{"-p", "1.2.3:80:80"}, "not an IP address"},
		{[]string{"-p", "8000-8001:80"}, "ranges differ"},
		{[]string{"--expose", "0"}, `invalid --expose "0"`},
		{[]string{"--expose", "http"}, `invalid --expose "http"`},
		{[]string{"--expose", "8002-8000"}, "ends before it starts"},
		{[]string{"--expose", "80/sctp"}, "protocol must be tcp or udp"},
		{[]string{"--add-host", "db"}, `invalid --add-host "db": use NAME:IP`},
		{[]string{"--add-host", ":10.0.0.1"}, "use NAME:IP"},
		{[]string{"--add-host", "db:"}, "neither an IP address nor host-gateway"},
		{[]string{"--add-host", "db:db.example"}, "neither an IP address nor host-gateway"},
		{[]string{"--dns", "dns.google"}, `invalid --dns "dns.google": use an IP address`},
		{[]string{"--dns", "8.8.8.8:53"}, "use an IP address"},
		{[]string{"--dns-option", "ndots:2 debug"}, "invalid --dns-option"},
		{[]string{"--dns-search", ""}, "invalid --dns-search"},
		{[]string{"--network", "container:"}, "name the container"},
		{[]string{"--network-alias", ""}, "invalid --network-alias"},
	}
	for _, tc := range cases {
		_, err := runConfig(t, append(tc.args, "busybox")...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || !strings.Contains(ee.Message, tc.want) || strings.Contains(ee.Message, "\n") {
			t.Errorf("%q: got %v, want exit 125 and one line with %q", tc.args, err, tc.want)
		}
	}
}

// Bad input fails in the CLI with one line and Docker's exit code, before
// any instance is looked for or started.
func TestBadNetworkInputFailsBeforeConnecting(t *testing.T) {
	t.Setenv("VMBOX_HOME", t.TempDir())
	t.Setenv("VMBOX_QEMU", "/nonexistent") // nothing may start a VM
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"run", "-p", "99999:80", "busybox"}, 125},
		{[]string{"run", "--dns", "busybox"}, 125}, // the image was taken as the address
		{[]string{"run", "--publish"}, 125},
		{[]string{"run", "--bogus", "busybox"}, 125},
		{[]string{"port", "web", "80/sctp"}, 125},
		{[]string{"network", "create", "--subnet", "172.20.0.1/16", "n"}, 125},
		{[]string{"network", "ls", "--filter", "colour=red"}, 125},
		{[]string{"network", "connect", "--ip", "::1", "n", "c"}, 125},
		{[]string{"network", "prune"}, 125}, // stdin is not a terminal
		{[]string{"network", "frobnicate"}, 1},
	}
	for _, tc := range cases {
		var stdout, stderr strings.Builder
		code := Execute(tc.args, strings.NewReader(""), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != tc.code || len(lines) != 1 || lines[0] == "" || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and one line on stderr", tc.args, code, stdout.String(), stderr.String(), tc.code)
		}
	}
}
