package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestFormatPorts(t *testing.T) {
	published := func(ip string, public, private uint16, proto string) api.PortSummary {
		return api.PortSummary{IP: ip, PublicPort: public, PrivatePort: private, Type: proto}
	}
	exposed := func(private uint16, proto string) api.PortSummary {
		return api.PortSummary{PrivatePort: private, Type: proto}
	}
	cases := []struct {
		name  string
		ports []api.PortSummary
		want  string
	}{
		{"none", nil, ""},
		{"loopback in both families", []api.PortSummary{published("::1", 8080, 80, "tcp"), published("127.0.0.1", 8080, 80, "tcp")},
			"127.0.0.1:8080->80/tcp, [::1]:8080->80/tcp"},
		{"exposed only", []api.PortSummary{exposed(80, "tcp")}, "80/tcp"},
		{"published and exposed, by port", []api.PortSummary{exposed(443, "tcp"), published("0.0.0.0", 8080, 80, "tcp"), exposed(53, "udp")},
			"53/udp, 0.0.0.0:8080->80/tcp, 443/tcp"},
		{"a published range", []api.PortSummary{published("0.0.0.0", 8001, 8001, "tcp"), published("0.0.0.0", 8000, 8000, "tcp"), published("0.0.0.0", 8002, 8002, "tcp")},
			"0.0.0.0:8000-8002->8000-8002/tcp"},
		{"a range onto other host ports", []api.PortSummary{published("127.0.0.1", 9000, 8000, "tcp"), published("127.0.0.1", 9001, 8001, "tcp")},
			"127.0.0.1:9000-9001->8000-8001/tcp"},
		{"an exposed range", []api.PortSummary{exposed(7000, "udp"), exposed(7001, "udp"), exposed(7002, "udp")}, "7000-7002/udp"},
		{"consecutive container ports on scattered host ports stay apart", []api.PortSummary{published("127.0.0.1", 8080, 80, "tcp"), published("127.0.0.1", 9000, 81, "tcp")},
			"127.0.0.1:8080->80/tcp, 127.0.0.1:9000->81/tcp"},
		{"tcp and udp of one port", []api.PortSummary{exposed(53, "udp"), exposed(53, "tcp")}, "53/tcp, 53/udp"},
		{"a port listed twice once", []api.PortSummary{exposed(80, "tcp"), exposed(80, "tcp")}, "80/tcp"},
		{"every address in both families", []api.PortSummary{published("::", 80, 80, "tcp"), published("0.0.0.0", 80, 80, "tcp")},
			"0.0.0.0:80->80/tcp, [::]:80->80/tcp"},
	}
	for _, tc := range cases {
		if got := formatPorts(tc.ports); got != tc.want {
			t.Errorf("%s: formatPorts = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWritePorts(t *testing.T) {
	ports := map[string][]api.PortMapping{
		"80/tcp":   {{HostIP: "127.0.0.1", HostPort: "8080"}, {HostIP: "::1", HostPort: "8080"}},
		"1000/tcp": {{HostIP: "0.0.0.0", HostPort: "1000"}},
		"80/udp":   {{HostIP: "127.0.0.1", HostPort: "8080"}},
		"443/tcp":  {{HostIP: "0.0.0.0", HostPort: "8443"}},
		"9000/tcp": nil, // exposed, not published
	}
	cases := []struct {
		name, key  string
		wantOut    string
		wantErrOut string
	}{
		{"every mapping, by port then protocol", "",
			"80/tcp -> 127.0.0.1:8080\n80/tcp -> [::1]:8080\n80/udp -> 127.0.0.1:8080\n443/tcp -> 0.0.0.0:8443\n1000/tcp -> 0.0.0.0:1000\n", ""},
		{"one port's addresses", "80/tcp", "127.0.0.1:8080\n[::1]:8080\n", ""},
		{"one udp port", "80/udp", "127.0.0.1:8080\n", ""},
		{"exposed but not published", "9000/tcp", "", "Error: No public port '9000/tcp' published for web\n"},
		{"not a port of the container", "81/tcp", "", "Error: No public port '81/tcp' published for web\n"},
	}
	for _, tc := range cases {
		var out, errOut strings.Builder
		err := writePorts(&out, &errOut, "web", tc.key, ports)
		if out.String() != tc.wantOut || errOut.String() != tc.wantErrOut {
			t.Errorf("%s: stdout %q stderr %q, want %q and %q", tc.name, out.String(), errOut.String(), tc.wantOut, tc.wantErrOut)
		}
		var ee *ExitError
		if failed := tc.wantErrOut != ""; failed != (err != nil) || (failed && (!errors.As(err, &ee) || ee.Code != 1 || ee.Message != "")) {
			t.Errorf("%s: error %v; want exit 1 without a second message only when the port is not published", tc.name, err)
		}
	}
}

func TestWritePortsWithNoPorts(t *testing.T) {
	var out, errOut strings.Builder
	if err := writePorts(&out, &errOut, "web", "", nil); err != nil || out.Len() != 0 || errOut.Len() != 0 {
		t.Fatalf("a container without ports: %v, %q, %q; want nothing", err, out.String(), errOut.String())
	}
}
