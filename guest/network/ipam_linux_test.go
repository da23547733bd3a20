package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"front", nil},
		{"my-net_1.internal", nil},
		{"0abc", nil},
		{"A", nil},
		{"", ErrInvalid},
		{"-front", ErrInvalid},
		{".hidden", ErrInvalid},
		{"with space", ErrInvalid},
		{"slash/name", ErrInvalid},
		{"ünicode", ErrInvalid},
		{"bridge", ErrInvalid},
		{"host", ErrInvalid},
		{"none", ErrInvalid},
		{"default", ErrInvalid},
		{"Bridge", nil}, // names are case-sensitive, as Docker's
	} {
		err := validateName(tc.name)
		if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("validateName(%q) = %v, want %v", tc.name, err, tc.err)
		}
	}
}

func TestParseCreate(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args api.NetworkCreateArgs
		err  string // part of the message; "" for success
		want Network
	}{
		{desc: "defaults", args: api.NetworkCreateArgs{Name: "n"}, want: Network{Name: "n", Driver: DriverBridge}},
		{desc: "explicit driver", args: api.NetworkCreateArgs{Name: "n", Driver: "bridge"}, want: Network{Name: "n", Driver: DriverBridge}},
		{desc: "other driver", args: api.NetworkCreateArgs{Name: "n", Driver: "overlay"}, err: "not supported"},
		{
			desc: "full",
			args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", Gateway: "10.5.0.254", IPRange: "10.5.8.0/24", Internal: true},
			want: Network{
				Name: "n", Driver: DriverBridge, Internal: true, Subnet: netip.MustParsePrefix("10.5.0.0/16"),
				Gateway: netip.MustParseAddr("10.5.0.254"), IPRange: netip.MustParsePrefix("10.5.8.0/24"),
			},
		},
		{desc: "not a CIDR", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0"}, err: "want a CIDR"},
		{desc: "host bits set", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.1.7/16"}, err: "it should be 10.5.0.0/16"},
		{desc: "IPv6", args: api.NetworkCreateArgs{Name: "n", Subnet: "fd00::/64"}, err: "IPv6 is not supported"},
		{desc: "too small", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/31"}, err: "/30 or shorter"},
		{desc: "slash 30", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.4/30"}, want: Network{Name: "n", Driver: DriverBridge, Subnet: netip.MustParsePrefix("10.5.0.4/30")}},
		{desc: "loopback", args: api.NetworkCreateArgs{Name: "n", Subnet: "127.0.0.0/8"}, err: "not a unicast range"},
		{desc: "multicast", args: api.NetworkCreateArgs{Name: "n", Subnet: "224.1.0.0/16"}, err: "not a unicast range"},
		{desc: "gateway without subnet", args: api.NetworkCreateArgs{Name: "n", Gateway: "10.5.0.1"}, err: "needs a subnet"},
		{desc: "gateway outside", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", Gateway: "10.6.0.1"}, err: "not a host address"},
		{desc: "gateway is broadcast", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", Gateway: "10.5.255.255"}, err: "not a host address"},
		{desc: "gateway is network", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", Gateway: "10.5.0.0"}, err: "not a host address"},
		{desc: "gateway IPv6", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", Gateway: "fd00::1"}, err: "IPv6 is not supported"},
		{desc: "range outside", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", IPRange: "10.6.0.0/24"}, err: "not inside subnet"},
		{desc: "range larger", args: api.NetworkCreateArgs{Name: "n", Subnet: "10.5.0.0/16", IPRange: "10.0.0.0/8"}, err: "not inside subnet"},
		{desc: "bridge name", args: api.NetworkCreateArgs{Name: "n", Options: map[string]string{optBridgeName: "mybr"}}, want: Network{Name: "n", Driver: DriverBridge, Bridge: "mybr", Options: map[string]string{optBridgeName: "mybr"}}},
		{desc: "bad bridge name", args: api.NetworkCreateArgs{Name: "n", Options: map[string]string{optBridgeName: "a-very-long-bridge-name"}}, err: "not an interface name"},
		{desc: "bad mtu", args: api.NetworkCreateArgs{Name: "n", Options: map[string]string{optMTU: "9"}}, err: "not an MTU"},
		{desc: "bad masquerade", args: api.NetworkCreateArgs{Name: "n", Options: map[string]string{optMasquerade: "perhaps"}}, err: "not a boolean"},
		{desc: "bad name", args: api.NetworkCreateArgs{Name: "a b"}, err: "invalid network name"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parseCreate(tc.args)
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrInvalid with %q", err, tc.err)
				}
				if strings.HasPrefix(err.Error(), ErrInvalid.Error()) {
					t.Errorf("message %q starts with the sentinel's text", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want.Name || got.Driver != tc.want.Driver || got.Subnet != tc.want.Subnet ||
				got.Gateway != tc.want.Gateway || got.IPRange != tc.want.IPRange || got.Internal != tc.want.Internal ||
				got.Bridge != tc.want.Bridge {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPickPool(t *testing.T) {
	p := netip.MustParsePrefix
	all172 := []netip.Prefix{p("172.16.0.0/12")}
	for _, tc := range []struct {
		desc  string
		taken []netip.Prefix
		want  string
	}{
		{"only the default bridge", []netip.Prefix{p("172.17.0.0/16")}, "172.18.0.0/16"},
		{"nothing taken", nil, "172.17.0.0/16"},
		{"a hole", []netip.Prefix{p("172.17.0.0/16"), p("172.18.0.0/16"), p("172.20.0.0/16")}, "172.19.0.0/16"},
		{"a small subnet inside a pool", []netip.Prefix{p("172.17.0.0/16"), p("172.18.3.0/24")}, "172.19.0.0/16"},
		{"a larger subnet over pools", []netip.Prefix{p("172.16.0.0/14")}, "172.20.0.0/16"},
		{"172 exhausted", all172, "192.168.0.0/20"},
		{"the VM on QEMU's user network", []netip.Prefix{p("172.17.0.0/16"), p("10.0.2.0/24")}, "172.18.0.0/16"},
		{"the VM on vz's NAT", append([]netip.Prefix{p("192.168.64.0/24")}, all172...), "192.168.0.0/20"},
		{"vz and 192.168.0.0/20 taken", append([]netip.Prefix{p("192.168.0.0/20"), p("192.168.64.0/24"), p("192.168.16.0/20"), p("192.168.32.0/20"), p("192.168.48.0/20")}, all172...), "192.168.80.0/20"},
		{"everything", []netip.Prefix{p("0.0.0.0/0")}, ""},
	} {
		got, err := pickPool(tc.taken)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: got %v, %v; want exhaustion", tc.desc, got, err)
			}
			continue
		}
		if err != nil || got != p(tc.want) {
			t.Errorf("%s: got %v, %v; want %s", tc.desc, got, err, tc.want)
		}
	}
	pools := defaultPools()
	if len(pools) != 15+16 || pools[len(pools)-1] != p("192.168.240.0/20") {
		t.Errorf("pools %v", pools)
	}
}

func TestPool(t *testing.T) {
	a := netip.MustParseAddr
	pl := newPool(netip.MustParsePrefix("172.18.0.0/16"), netip.Prefix{}, a("172.18.0.1"))
	for i, want := range []string{"172.18.0.2", "172.18.0.3", "172.18.0.4"} {
		got, err := pl.allocate("c" + string(rune('0'+i)))
		if err != nil || got != a(want) {
			t.Fatalf("allocate %d = %v, %v; want %s", i, got, err, want)
		}
	}
	pl.release(a("172.18.0.3"))
	if got, _ := pl.allocate("x"); got != a("172.18.0.3") {
		t.Errorf("freed address not reused first: got %v", got)
	}
	if err := pl.reserve(a("172.18.0.2"), "y"); !errors.Is(err, ErrConflict) {
		t.Errorf("taken static address: %v", err)
	}
	for _, bad := range []string{"172.18.0.1", "172.18.0.0", "172.18.255.255", "172.19.0.5", "fd00::1"} {
		if err := pl.reserve(a(bad), "y"); !errors.Is(err, ErrInvalid) {
			t.Errorf("reserve %s: %v, want ErrInvalid", bad, err)
		}
	}
	if err := pl.reserve(a("172.18.7.7"), "y"); err != nil {
		t.Errorf("reserve: %v", err)
	}
	if err := pl.reserve(a("::ffff:172.18.7.8"), "y"); err != nil {
		t.Errorf("reserve a mapped address: %v", err)
	}

	// A gateway other than .1, and a range: the range's lowest address
	// that is not reserved, then exhaustion.
	pl = newPool(netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.1.0.0/30"), a("10.1.0.1"))
	got, err := pl.allocate("a")
	if err != nil || got != a("10.1.0.2") {
		t.Fatalf("first in range: %v, %v", got, err)
	}
	if got, err := pl.allocate("b"); err != nil || got != a("10.1.0.3") {
		t.Fatalf("second in range: %v, %v", got, err)
	}
	if _, err := pl.allocate("c"); !errors.Is(err, ErrConflict) {
		t.Errorf("exhausted range: %v", err)
	}
	// Static addresses may lie outside the range.
	if err := pl.reserve(a("10.1.0.100"), "d"); err != nil {
		t.Errorf("static outside the range: %v", err)
	}

	// The smallest subnet: two host addresses, one the gateway.
	pl = newPool(netip.MustParsePrefix("10.2.0.4/30"), netip.Prefix{}, a("10.2.0.6"))
	if got, err := pl.allocate("a"); err != nil || got != a("10.2.0.5") {
		t.Fatalf("/30: %v, %v", got, err)
	}
	if _, err := pl.allocate("b"); err == nil {
		t.Error("/30 gave a second address")
	}
}

func TestAddressHelpers(t *testing.T) {
	for prefix, want := range map[string]string{
		"172.17.0.0/16": "172.17.255.255",
		"10.0.2.0/24":   "10.0.2.255",
		"10.0.0.4/30":   "10.0.0.7",
		"0.0.0.0/0":     "255.255.255.255",
		"10.1.2.3/32":   "10.1.2.3",
	} {
		if got := lastAddr(netip.MustParsePrefix(prefix)); got.String() != want {
			t.Errorf("lastAddr(%s) = %v, want %s", prefix, got, want)
		}
	}
	if got := macFor(netip.MustParseAddr("172.17.0.2")).String(); got != "02:42:ac:11:00:02" {
		t.Errorf("mac %s", got)
	}
}
