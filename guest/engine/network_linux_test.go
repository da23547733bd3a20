package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/network"
)

func TestPortsToPublish(t *testing.T) {
	tests := []struct {
		name    string
		rec     record
		want    []api.PortBinding
		wantErr bool
	}{
		{
			name: "bindings as given",
			rec:  record{Config: api.ContainerConfig{PortBindings: []api.PortBinding{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}}},
			want: []api.PortBinding{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}},
		},
		{
			name: "publish all adds exposed ports not bound",
			rec: record{
				ImageExposedPorts: []string{"80/tcp", "53/udp"},
				Config: api.ContainerConfig{
					PublishAllPorts: true, ExposedPorts: []string{"9000"},
					PortBindings: []api.PortBinding{{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}},
				},
			},
			want: []api.PortBinding{
				{HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
				{ContainerPort: 53, Proto: "udp"},
				{ContainerPort: 9000, Proto: "tcp"},
			},
		},
		{
			name: "exposed without publish all stays unpublished",
			rec:  record{ImageExposedPorts: []string{"80/tcp"}},
			want: nil,
		},
		{
			name:    "bad protocol",
			rec:     record{Config: api.ContainerConfig{PortBindings: []api.PortBinding{{ContainerPort: 80, Proto: "sctp"}}}},
			wantErr: true,
		},
		{
			name:    "bad exposed port",
			rec:     record{ImageExposedPorts: []string{"http"}, Config: api.ContainerConfig{PublishAllPorts: true}},
			wantErr: true,
		},
	}
	e := &Engine{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.portsToPublish(&tt.rec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHostsFile(t *testing.T) {
	e := &Engine{opts: Options{HostAddr: netip.MustParseAddr("10.0.2.2")}}
	rec := &record{Name: "web", Hostname: "abc123", Config: api.ContainerConfig{ExtraHosts: []string{"db:10.1.1.1", "gw:host-gateway"}}}
	eps := []network.Endpoint{{Addr: netip.MustParsePrefix("172.18.0.2/16")}}
	got := e.hostsFile(rec, eps)
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n",
		"10.0.2.2\thost.vmbox.internal host.docker.internal\n",
		"10.1.1.1\tdb\n",
		"10.0.2.2\tgw\n",
		"172.18.0.2\tabc123 web\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts lacks %q:\n%s", want, got)
		}
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	vm := filepath.Join(dir, "resolv.conf")
	os.WriteFile(vm, []byte("# generated\nnameserver 10.0.2.3\nnameserver 127.0.0.53\nsearch example.test\noptions ndots:2\n"), 0o644)
	e := &Engine{opts: Options{ResolvConf: vm}}
	tests := []struct {
		name string
		rec  record
		want string
	}{
		{"the VM's servers without loopback", record{}, "nameserver 10.0.2.3\nsearch example.test\noptions ndots:2\n"},
		{"the host network keeps loopback", record{Config: api.ContainerConfig{NetworkMode: "host"}}, "nameserver 10.0.2.3\nnameserver 127.0.0.53\nsearch example.test\noptions ndots:2\n"},
		{"--dns and friends replace", record{Config: api.ContainerConfig{DNS: []string{"1.1.1.1"}, DNSSearch: []string{"a.test"}, DNSOptions: []string{"rotate"}}}, "nameserver 1.1.1.1\nsearch a.test\noptions rotate\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.resolvConf(&tt.rec); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestWriteFileInPlaceKeepsTheInode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := writeFileInPlace(p, "one\n"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := writeFileInPlace(p, "two\n"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) {
		t.Fatal("the file was replaced: a bind mount of it would keep the old content")
	}
	if b, _ := os.ReadFile(p); string(b) != "two\n" {
		t.Fatalf("content %q", b)
	}
}

func TestRuntimeNetworkMode(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{
		{"host", container.NetworkHost},
		{"none", container.NetworkNone},
		{"bridge", container.NetworkNone},
		{"app", container.NetworkNone},
		{"container:0123abcd", container.NetworkNone},
	} {
		if got := runtimeNetworkMode(tc.mode); got != tc.want {
			t.Errorf("runtimeNetworkMode(%q) = %q, want %q", tc.mode, got, tc.want)
		}
	}
}
