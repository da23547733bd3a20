package boot

import (
	"strings"
	"testing"
)

const testModules = `# name path deps
virtio_ring /lib/modules/6.1/kernel/drivers/virtio/virtio_ring.ko -
virtio /lib/modules/6.1/kernel/drivers/virtio/virtio.ko virtio_ring
virtio_pci_modern_dev /lib/modules/6.1/virtio_pci_modern_dev.ko -
virtio_pci /lib/modules/6.1/virtio_pci.ko virtio,virtio_ring,virtio_pci_modern_dev

virtio_console /lib/modules/6.1/virtio_console.ko virtio,virtio_ring
failover /lib/modules/6.1/failover.ko -
net_failover /lib/modules/6.1/net_failover.ko failover
virtio_net /lib/modules/6.1/virtio_net.ko net_failover,virtio,virtio_ring
vsock /lib/modules/6.1/vsock.ko -
vmw_vsock_virtio_transport_common /lib/modules/6.1/vmw_vsock_virtio_transport_common.ko vsock
vmw-vsock-virtio-transport /lib/modules/6.1/vmw_vsock_virtio_transport.ko vmw_vsock_virtio_transport_common,vsock,virtio,virtio_ring
`

func TestParseModuleList(t *testing.T) {
	l, err := parseModuleList(strings.NewReader(testModules))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Modules) != 11 {
		t.Fatalf("got %d modules", len(l.Modules))
	}
	m, ok := l.Lookup("vmw-vsock-virtio-transport")
	if !ok || m.Name != "vmw_vsock_virtio_transport" || m.Path != "/lib/modules/6.1/vmw_vsock_virtio_transport.ko" || len(m.Deps) != 4 {
		t.Fatalf("lookup by dash name = %+v, %v", m, ok)
	}
	if _, ok := l.Lookup("vmw_vsock_virtio_transport"); !ok {
		t.Fatal("lookup by canonical name failed")
	}
}

func TestParseModuleListErrors(t *testing.T) {
	tests := []struct{ name, in, errHas string }{
		{"two fields", "a /a.ko\n", "line 1"},
		{"four fields", "a /a.ko - x\n", "line 1"},
		{"relative path", "a a.ko -\n", "absolute"},
		{"unclean path", "a /x/../a.ko -\n", "absolute"},
		{"dep after user", "b /b.ko a\na /a.ko -\n", "not listed before"},
		{"unknown dep", "a /a.ko -\nb /b.ko a,zz\n", "line 2: module b needs zz"},
		{"self dep", "a /a.ko a\n", "itself"},
		{"duplicate", "a /a.ko -\na-x /b.ko -\na /c.ko -\n", "line 3: module a listed twice"},
		{"empty dep", "a /a.ko -\nb /b.ko a,\n", "empty dependency"},
		{"bad name", "a/b /a.ko -\n", "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseModuleList(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

func TestModuleClosure(t *testing.T) {
	l, err := parseModuleList(strings.NewReader(testModules))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names  []string
		want   string
		errHas string
	}{
		{nil, "", ""},
		{[]string{"virtio_ring"}, "virtio_ring", ""},
		{[]string{"virtio_console"}, "virtio_ring virtio virtio_console", ""},
		{[]string{"virtio_net", "virtio_pci"}, "virtio_ring virtio virtio_pci_modern_dev virtio_pci failover net_failover virtio_net", ""},
		{[]string{"virtio-pci", "virtio_pci", "virtio"}, "virtio_ring virtio virtio_pci_modern_dev virtio_pci", ""},
		{[]string{"vmw_vsock_virtio_transport"}, "virtio_ring virtio vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport", ""},
		{[]string{"virtio_net", "overlay"}, "", "module overlay is not in the module list"},
	}
	for _, tt := range tests {
		mods, err := l.Closure(tt.names...)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Closure(%v) error = %v, want %q", tt.names, err, tt.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("Closure(%v): %v", tt.names, err)
			continue
		}
		var got []string
		for _, m := range mods {
			got = append(got, m.Name)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("Closure(%v) = %v, want %s", tt.names, got, tt.want)
		}
	}
}
