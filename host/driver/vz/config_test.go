package vz

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
)

func TestKernelCmdline(t *testing.T) {
	got := strings.Join(KernelCmdline([]string{"loglevel=7", "quiet=0"}), " ")
	want := "console=hvc0 quiet panic=-1 " + strings.Join(driver.CommonCmdline(), " ") + " loglevel=7 quiet=0"
	if got != want {
		t.Fatalf("cmdline\n got %s\nwant %s", got, want)
	}
	for _, w := range []string{"maxcpus=", "tsc", "lpj=", "ttyS0", "ttyAMA0"} {
		if strings.Contains(strings.Join(KernelCmdline(nil), " "), w) {
			t.Errorf("cmdline has %q, which only QEMU needs", w)
		}
	}
}

func TestGuestNetworkValidates(t *testing.T) {
	n := GuestNetwork()
	if n.Mode != vmconfig.NetworkDHCP {
		t.Fatalf("mode %q, want dhcp", n.Mode)
	}
	// The guest validates the whole instance configuration.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	c := vmconfig.Config{
		Version:       vmconfig.Version,
		Name:          "default",
		AuthorizedKey: string(ssh.MarshalAuthorizedKey(sshPub)),
		HostKey:       string(pem.EncodeToMemory(block)),
		Network:       n,
		Agent:         GuestAgent(),
		Modules:       guestModules(),
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestGuestModulesShipped(t *testing.T) {
	// The guest image lists these in /etc/vmbox/modules.txt; a name it
	// does not ship would fail the boot.
	shipped := map[string]bool{
		"virtio_pci": true, "virtio_console": true, "virtio_blk": true, "virtio_net": true,
		"virtio_rng": true, "vmw_vsock_virtio_transport": true,
	}
	mods := guestModules()
	if mods[0] != "virtio_pci" {
		t.Errorf("first module %s: the transport must come first", mods[0])
	}
	seen := map[string]bool{}
	for _, m := range mods {
		if !shipped[m] {
			t.Errorf("module %s is not one the guest image ships", m)
		}
		seen[m] = true
	}
	for m := range shipped {
		if !seen[m] {
			t.Errorf("module %s missing: a device Start adds would have no driver", m)
		}
	}
}

func TestMACAddress(t *testing.T) {
	a, b := MACAddress("/Users/x/.vmbox/default"), MACAddress("/Users/x/.vmbox/other")
	if a.String() != MACAddress("/Users/x/.vmbox/default").String() {
		t.Fatal("MAC address changes between calls")
	}
	if bytes.Equal(a, b) {
		t.Fatalf("two instances share MAC %s", a)
	}
	for _, m := range []net.HardwareAddr{a, b} {
		if len(m) != 6 || m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Errorf("MAC %s is not a locally administered unicast address", m)
		}
	}
}

func TestCheckArch(t *testing.T) {
	for _, tt := range []struct {
		guest, host string
		err         string
	}{
		{"arm64", "arm64", ""},
		{"amd64", "amd64", ""},
		{"amd64", "arm64", "runs only arm64 guests on this Mac, not amd64: use --arch arm64, or --driver qemu"},
		{"arm64", "amd64", "runs only amd64 guests"},
		{"riscv64", "arm64", `guest architecture "riscv64" is not supported`},
	} {
		err := checkArch(tt.guest, tt.host)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("checkArch(%s, %s) = %v, want %q", tt.guest, tt.host, err, tt.err)
		}
	}
}

func TestCheckMacOS(t *testing.T) {
	for _, tt := range []struct {
		ver string
		err string
	}{
		{"12.0", ""},
		{"14.5\n", ""},
		{"15.0.1", ""},
		{"26", ""},
		{"11.7.10", "needs macOS 12 or later (this is 11.7.10)"},
		{"", "not major.minor"},
		{"fourteen", "not major.minor"},
		{"14.5.1.2", "not major.minor"},
	} {
		err := checkMacOS(tt.ver)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("checkMacOS(%q) = %v, want %q", tt.ver, err, tt.err)
		}
	}
}

func TestValidationError(t *testing.T) {
	const exe = "/usr/local/bin/vmbox"
	for _, tt := range []struct {
		msg  string
		want string
	}{
		{`Error Domain=VZErrorDomain Code=2 Description="Invalid virtual machine configuration. The process doesn’t have the “com.apple.security.virtualization” entitlement."`,
			"lacks the com.apple.security.virtualization entitlement"},
		{`Error Domain=VZErrorDomain Code=2 Description="Invalid virtual machine configuration. Virtualization is not available on this hardware."`,
			"not available on this Mac"},
		{`Error Domain=VZErrorDomain Code=2 Description="Invalid virtual machine configuration. The kernel is invalid."`, ""},
	} {
		err := validationError(tt.msg, exe)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want nil (not about the host)", tt.msg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.msg, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: error has several lines: %q", tt.msg, err)
		}
	}
	if err := validationError("… entitlement …", exe); err == nil || !strings.Contains(err.Error(), exe) {
		t.Errorf("entitlement error does not name the binary to sign: %v", err)
	}
}

type fakeConn struct{ net.Conn }

func (*fakeConn) Close() error { return nil }

func TestToConnTypedNil(t *testing.T) {
	var none *fakeConn
	c, err := toConn(none, errors.New("refused"))
	if c != nil || err == nil {
		t.Fatalf("error case: %#v, %v; want an untyped nil conn", c, err)
	}
	c, err = toConn(none, nil)
	if c != nil || err == nil {
		t.Fatalf("nil pointer without error: %#v, %v; want nil and an error", c, err)
	}
	f := &fakeConn{}
	c, err = toConn(f, nil)
	if err != nil || c != net.Conn(f) {
		t.Fatalf("connection: %v, %v", c, err)
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kernel := write("kernel", "Image")
	base := write("initrd.img", "base!")
	inst := write("instance.cpio", "inst")
	disk := write("data.img", "")
	good := driver.Spec{
		Name: "default", Dir: dir, Arch: "arm64", CPUs: 2, MemoryMiB: 1024,
		Kernel: kernel, Initrds: []string{base, inst}, Cmdline: []string{"x=1"}, DataDisk: disk,
	}

	c, err := resolve(ctx, good, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if c.Initrd != filepath.Join(dir, InitrdName) {
		t.Errorf("initrd %s, want the combined file", c.Initrd)
	}
	if b, _ := os.ReadFile(c.Initrd); string(b) != "base!\x00\x00\x00inst" {
		t.Errorf("combined initrd %q", b)
	}
	if c.Console != filepath.Join(dir, ConsoleName) {
		t.Errorf("default console %s", c.Console)
	}
	if !strings.HasPrefix(c.Cmdline, "console=hvc0 ") || !strings.HasSuffix(c.Cmdline, " x=1") {
		t.Errorf("cmdline %q", c.Cmdline)
	}
	if c.MAC.String() != MACAddress(dir).String() {
		t.Errorf("MAC %s", c.MAC)
	}

	for _, tt := range []struct {
		name string
		edit func(*driver.Spec)
		err  string
	}{
		{"other arch", func(s *driver.Spec) { s.Arch = "amd64" }, "runs only arm64 guests"},
		{"no CPU", func(s *driver.Spec) { s.CPUs = 0 }, "0 CPUs"},
		{"little memory", func(s *driver.Spec) { s.MemoryMiB = 64 }, "64 MiB of memory"},
		{"no kernel", func(s *driver.Spec) { s.Kernel = "" }, "needs an instance directory and a kernel"},
		{"missing kernel", func(s *driver.Spec) { s.Kernel = filepath.Join(dir, "nope") }, "kernel:"},
		{"missing disk", func(s *driver.Spec) { s.DataDisk = filepath.Join(dir, "nope") }, "data disk:"},
		{"missing initrd", func(s *driver.Spec) { s.Initrds = []string{base, filepath.Join(dir, "nope")} }, "initrd"},
		{"dir is a file", func(s *driver.Spec) { s.Dir = kernel }, "is not a directory"},
	} {
		s := good
		tt.edit(&s)
		_, err := resolve(ctx, s, "arm64")
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "VM default: ") {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	s := good
	s.Initrds = []string{inst, base} // a change, so the file is rewritten
	if _, err := resolve(cancelled, s, "arm64"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestEntitlements checks the plist codesign embeds (make sign-darwin): a
// typo there would only show on a Mac, as the entitlement error.
func TestEntitlements(t *testing.T) {
	f, err := os.Open("vmbox.entitlements")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var doc struct {
		XMLName xml.Name `xml:"plist"`
		Dict    struct {
			Items []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"dict"`
	}
	if err := xml.NewDecoder(f).Decode(&doc); err != nil {
		t.Fatalf("vmbox.entitlements: %v", err)
	}
	items := doc.Dict.Items
	var got []string
	for i := 0; i+1 < len(items); i += 2 {
		if items[i].XMLName.Local != "key" {
			t.Fatalf("plist dict item %d is <%s>, want <key>", i, items[i].XMLName.Local)
		}
		got = append(got, items[i].Value+"="+items[i+1].XMLName.Local)
	}
	if len(items) != 2 || got[0] != "com.apple.security.virtualization=true" {
		t.Fatalf("entitlements %v (%d items), want exactly com.apple.security.virtualization=true", got, len(items))
	}
}
