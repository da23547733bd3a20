package cli

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

var testNetworks = []api.NetworkResource{
	{Name: "none", ID: "d4808136d1670000000000000000000000000000000000000000000000000001", Driver: "null", Scope: "local"},
	{Name: "front", ID: "e68c23e24cc30000000000000000000000000000000000000000000000000002", Driver: "bridge", Scope: "local",
		Labels: map[string]string{"env": "prod", "team": "web"}},
	{Name: "bridge", ID: "4bcd7319e5ae0000000000000000000000000000000000000000000000000003", Driver: "bridge", Scope: "local"},
	{Name: "back", ID: "99b78dcc8af00000000000000000000000000000000000000000000000000004", Driver: "bridge", Scope: "local",
		Labels: map[string]string{"env": "dev"}},
	{Name: "host", ID: "8a72dcd00a220000000000000000000000000000000000000000000000000005", Driver: "host", Scope: "local"},
}

func TestNetworkFilter(t *testing.T) {
	cases := []struct {
		filters []string
		want    []string // names, in list order
	}{
		{nil, []string{"none", "front", "bridge", "back", "host"}},
		{[]string{"name=front"}, []string{"front"}},
		{[]string{"name=ba"}, []string{"back"}},                            // anywhere in the name
		{[]string{"name=^b"}, []string{"bridge", "back"}},                  // a regular expression, as Docker's
		{[]string{"name=front", "name=back"}, []string{"front", "back"}},   // one key: either
		{[]string{"id=4bcd7319"}, []string{"bridge"}},                      // part of the ID
		{[]string{"driver=bridge"}, []string{"front", "bridge", "back"}},   // exact
		{[]string{"driver=bridg"}, nil},                                    // not a prefix
		{[]string{"driver=host", "driver=null"}, []string{"none", "host"}}, // either
		{[]string{"label=env"}, []string{"front", "back"}},                 // the key alone
		{[]string{"label=env=prod"}, []string{"front"}},                    // key and value
		{[]string{"label=env=dev", "label=team"}, nil},                     // labels: all must hold
		{[]string{"label=env=prod", "label=team=web"}, []string{"front"}},
		{[]string{"driver=bridge", "name=^b"}, []string{"bridge", "back"}}, // keys: all must hold
		{[]string{"NAME=host"}, []string{"host"}},                          // keys in any case
		{[]string{"name=nope"}, nil},
		{[]string{"label=env=prod=1"}, nil}, // the value keeps its =
		{[]string{"id=e68c23e24cc3", "driver=null"}, nil},
		{[]string{"id=8a72dcd00a22", "id=d4808136d167"}, []string{"none", "host"}},
	}
	for _, tc := range cases {
		f, err := parseNetworkFilter(tc.filters)
		if err != nil {
			t.Errorf("%q: %v", tc.filters, err)
			continue
		}
		var got []string
		for _, n := range f.apply(testNetworks) {
			got = append(got, n.Name)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.filters, got, tc.want)
		}
	}
}

func TestNetworkFilterRejectsBadInput(t *testing.T) {
	for _, filters := range [][]string{{"name"}, {"colour=red"}, {"name=("}, {"dangling=true"}} {
		_, err := parseNetworkFilter(filters)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || !strings.Contains(ee.Message, "invalid --filter") {
			t.Errorf("%q: %v; want a usage error", filters, err)
		}
	}
}

func TestPrintNetworks(t *testing.T) {
	cases := []struct {
		name    string
		out     outputFlags
		noTrunc bool
		list    []api.NetworkResource
		want    string
	}{
		{"table, by name, short IDs", outputFlags{format: "table"}, false, testNetworks,
			"NETWORK ID     NAME     DRIVER   SCOPE\n" +
				"99b78dcc8af0   back     bridge   local\n" +
				"4bcd7319e5ae   bridge   bridge   local\n" +
				"e68c23e24cc3   front    bridge   local\n" +
				"8a72dcd00a22   host     host     local\n" +
				"d4808136d167   none     null     local\n"},
		{"quiet", outputFlags{format: "table", quiet: true}, false, testNetworks[:2],
			"e68c23e24cc3\nd4808136d167\n"},
		{"quiet, whole IDs", outputFlags{format: "table", quiet: true}, true, testNetworks[:1],
			testNetworks[0].ID + "\n"},
		{"table, whole IDs", outputFlags{format: "table"}, true, testNetworks[4:],
			"NETWORK ID                                                         NAME   DRIVER   SCOPE\n" +
				testNetworks[4].ID + "   host   host     local\n"},
		{"empty table", outputFlags{format: "table"}, false, nil, "NETWORK ID   NAME   DRIVER   SCOPE\n"},
		{"empty JSON", outputFlags{format: "json"}, false, nil, "[]\n"},
	}
	for _, tc := range cases {
		var b strings.Builder
		if err := printNetworks(&b, tc.out, tc.noTrunc, tc.list); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, b.String(), tc.want)
		}
	}
}

func TestPrintNetworksJSONCarriesWholeResources(t *testing.T) {
	var b strings.Builder
	if err := printNetworks(&b, outputFlags{format: "json"}, false, testNetworks); err != nil {
		t.Fatal(err)
	}
	var got []api.NetworkResource
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatalf("%v in %s", err, b.String())
	}
	if len(got) != len(testNetworks) || got[0].Name != "back" || got[0].ID != testNetworks[3].ID || got[0].Labels["env"] != "dev" {
		t.Errorf("JSON networks: %+v", got)
	}
}

func TestNetworkCreateRequest(t *testing.T) {
	cases := []struct {
		name  string
		flags networkCreateFlags
		want  api.NetworkCreateArgs
	}{
		{"defaults", networkCreateFlags{driver: "bridge"}, api.NetworkCreateArgs{Name: "n", Driver: "bridge"}},
		{"an address plan", networkCreateFlags{driver: "bridge", subnet: "172.20.0.0/16", gateway: "172.20.0.254", ipRange: "172.20.5.0/24", internal: true},
			api.NetworkCreateArgs{Name: "n", Driver: "bridge", Subnet: "172.20.0.0/16", Gateway: "172.20.0.254", IPRange: "172.20.5.0/24", Internal: true}},
		{"labels and options", networkCreateFlags{labels: []string{"env=prod", "flag", "a=b=c"}, options: []string{"com.docker.network.bridge.name=br-x"}},
			api.NetworkCreateArgs{Name: "n", Labels: map[string]string{"env": "prod", "flag": "", "a": "b=c"},
				Options: map[string]string{"com.docker.network.bridge.name": "br-x"}}},
	}
	for _, tc := range cases {
		got, err := tc.flags.request("n")
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestNetworkCreateRejectsBadInput(t *testing.T) {
	cases := []struct {
		flags networkCreateFlags
		want  string
	}{
		{networkCreateFlags{subnet: "172.20.0.0"}, "use CIDR notation"},
		{networkCreateFlags{subnet: "172.20.0.1/16"}, "it should be 172.20.0.0/16"},
		{networkCreateFlags{gateway: "172.20.0.1"}, "inside --subnet"},
		{networkCreateFlags{subnet: "172.20.0.0/16", gateway: "172.21.0.1"}, "inside --subnet"},
		{networkCreateFlags{subnet: "172.20.0.0/16", gateway: "gw"}, "use an IP address"},
		{networkCreateFlags{subnet: "172.20.0.0/16", ipRange: "172.20.0.0/15"}, "inside --subnet"},
		{networkCreateFlags{subnet: "172.20.0.0/16", ipRange: "172.21.0.0/24"}, "inside --subnet"},
		{networkCreateFlags{subnet: "172.20.0.0/16", ipRange: "172.20.1.1/24"}, "it should be 172.20.1.0/24"},
		{networkCreateFlags{ipRange: "172.20.1.0/24"}, "inside --subnet"},
		{networkCreateFlags{labels: []string{"=x"}}, "invalid --label"},
		{networkCreateFlags{options: []string{""}}, "invalid --opt"},
	}
	for _, tc := range cases {
		_, err := tc.flags.request("n")
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || !strings.Contains(ee.Message, tc.want) {
			t.Errorf("%+v: %v; want a usage error with %q", tc.flags, err, tc.want)
		}
	}
}

func TestConfirm(t *testing.T) {
	cases := []struct {
		answer string
		want   bool
	}{
		{"y\n", true}, {"Y\n", true}, {"yes\n", true}, {" y \r\n", true}, {"y", true},
		{"n\n", false}, {"\n", false}, {"", false}, {"yep\n", false},
	}
	for _, tc := range cases {
		var out strings.Builder
		got, err := confirm(strings.NewReader(tc.answer), &out, networkPruneWarning)
		if err != nil || got != tc.want {
			t.Errorf("answer %q: %v, %v; want %v", tc.answer, got, err, tc.want)
		}
		if !strings.HasPrefix(out.String(), "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ") {
			t.Errorf("prompt %q", out.String())
		}
	}
}

func TestWritePruned(t *testing.T) {
	var b strings.Builder
	writePruned(&b, api.NetworkPruneReply{NetworksDeleted: []string{"front", "back"}})
	if b.String() != "Deleted Networks:\nfront\nback\n" {
		t.Errorf("pruned two: %q", b.String())
	}
	b.Reset()
	writePruned(&b, api.NetworkPruneReply{})
	if b.Len() != 0 {
		t.Errorf("pruned none: %q", b.String())
	}
}
