package vmconfig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testKeys(t *testing.T) (authorized, hostKey string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "vmbox host key")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " client@host", string(pem.EncodeToMemory(block))
}

func validConfig(t *testing.T) Config {
	auth, host := testKeys(t)
	return Config{
		Version:          Version,
		Name:             "default",
		Hostname:         "vmbox-default",
		AuthorizedKey:    auth,
		HostKey:          host,
		BootTimeUnixNano: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Network:          Network{Mode: NetworkStatic, Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		DataDisk:         DataDisk{Required: true, Serial: "vmbox-data"},
		Agent:            Agent{Transport: AgentTCP, Port: 2222},
		Modules:          []string{"virtio_pci", "virtio-console"},
		LateModules:      []string{"button", "evdev"},
		CPUs:             2,
	}
}

func TestInstanceConfigRoundTrip(t *testing.T) {
	c := validConfig(t)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "instance.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != c.Hostname || got.AuthorizedKey != c.AuthorizedKey || got.HostKey != c.HostKey ||
		!got.BootTime().Equal(c.BootTime()) || got.DataDisk != c.DataDisk || got.CPUs != 2 ||
		strings.Join(got.Modules, ",") != "virtio_pci,virtio-console" || got.Agent != c.Agent ||
		strings.Join(got.LateModules, ",") != "button,evdev" {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", got, c)
	}
}

func TestInstanceConfigValidate(t *testing.T) {
	_, otherHost := testKeys(t)
	tests := []struct {
		name   string
		mutate func(c *Config)
		errHas string // "" = valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"default hostname", func(c *Config) { c.Hostname = "" }, ""},
		{"dhcp", func(c *Config) { c.Network = Network{Mode: NetworkDHCP, DNS: []string{"1.1.1.1"}} }, ""},
		{"none", func(c *Config) { c.Network = Network{Mode: NetworkNone} }, ""},
		{"static explicit", func(c *Config) {
			c.Network = Network{Mode: NetworkStatic, Interface: "eth1", Address: "192.168.5.15/24", Gateway: "192.168.5.2", DNS: []string{"192.168.5.3", "fd00::3"}, Search: []string{"example.com"}}
		}, ""},
		{"wrong version", func(c *Config) { c.Version = 2 }, "version 2"},
		{"missing version", func(c *Config) { c.Version = 0 }, "version 0"},
		{"bad hostname", func(c *Config) { c.Hostname = "-bad_name" }, "hostname"},
		{"long hostname", func(c *Config) { c.Hostname = strings.Repeat("a", 65) }, "hostname"},
		{"no authorized key", func(c *Config) { c.AuthorizedKey = " " }, "authorizedKey is empty"},
		{"garbage authorized key", func(c *Config) { c.AuthorizedKey = "ssh-ed25519 notbase64" }, "authorizedKey"},
		{"two authorized keys", func(c *Config) { c.AuthorizedKey = c.AuthorizedKey + "\n" + c.AuthorizedKey }, "more than one key"},
		{"no host key", func(c *Config) { c.HostKey = "" }, "hostKey is empty"},
		{"public key as host key", func(c *Config) { c.HostKey = c.AuthorizedKey }, "hostKey"},
		{"truncated host key", func(c *Config) { c.HostKey = otherHost[:len(otherHost)/2] }, "hostKey"},
		{"negative boot time", func(c *Config) { c.BootTimeUnixNano = -1 }, "negative"},
		{"negative cpus", func(c *Config) { c.CPUs = -2 }, "cpus"},
		{"bad module", func(c *Config) { c.Modules = []string{"../evil"} }, "module name"},
		{"bad late module", func(c *Config) { c.LateModules = []string{"a b"} }, "module name"},
		{"vsock agent", func(c *Config) { c.Agent = Agent{Transport: AgentVsock, Port: 2222} }, ""},
		{"no agent transport", func(c *Config) { c.Agent.Transport = "" }, "transport is empty"},
		{"unknown agent transport", func(c *Config) { c.Agent.Transport = "serial" }, "not one of tcp, vsock"},
		{"agent port 0", func(c *Config) { c.Agent.Port = 0 }, "port 0"},
		{"agent port too big", func(c *Config) { c.Agent.Port = 65536 }, "port 65536"},
		{"empty mode", func(c *Config) { c.Network.Mode = "" }, "mode is empty"},
		{"unknown mode", func(c *Config) { c.Network.Mode = "bridge" }, "not one of"},
		{"bad interface", func(c *Config) { c.Network.Interface = "eth0/../x" }, "interface"},
		{"bad address", func(c *Config) { c.Network.Address = "10.0.2.15" }, "CIDR"},
		{"v6 address", func(c *Config) { c.Network.Address = "fd00::15/64" }, "CIDR"},
		{"address with dhcp", func(c *Config) { c.Network = Network{Mode: NetworkDHCP, Address: "10.0.2.15/24"} }, "only for mode static"},
		{"bad gateway", func(c *Config) { c.Network.Gateway = "gateway" }, "gateway"},
		{"bad dns", func(c *Config) { c.Network.DNS = []string{"8.8.8"} }, "dns server"},
		{"bad search", func(c *Config) { c.Network.Search = []string{"a b"} }, "search domain"},
		{"bad serial", func(c *Config) { c.DataDisk.Serial = "a/b" }, "serial"},
		{"long serial", func(c *Config) { c.DataDisk.Serial = strings.Repeat("x", 21) }, "serial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(&c)
			err := c.Validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseInstanceConfigRejects(t *testing.T) {
	c := validConfig(t)
	good, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc, errHas string
	}{
		{"unknown field", strings.Replace(string(good), `"name"`, `"nmae"`, 1), "unknown field"},
		{"trailing data", string(good) + `{}`, "trailing data"},
		{"not json", "version: 1", "decode"},
		{"empty", "", "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestStaticSettings(t *testing.T) {
	n := Network{Mode: NetworkStatic, Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}}
	addr, gw, dns, err := n.StaticSettings()
	if err != nil {
		t.Fatal(err)
	}
	if addr.String() != "10.0.2.15/24" || gw.String() != "10.0.2.2" || len(dns) != 1 || dns[0].String() != "10.0.2.3" {
		t.Fatalf("defaults = %s %s %v", addr, gw, dns)
	}
	if n.InterfaceName() != "eth0" {
		t.Fatalf("interface = %s", n.InterfaceName())
	}
	c := Config{}
	if c.EffectiveHostname() != DefaultHostname || !c.BootTime().IsZero() {
		t.Fatal("zero config defaults wrong")
	}
}
