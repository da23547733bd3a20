package netlink

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/boot/internal/netnstest"
)

func requireLittleEndian(t *testing.T) {
	if nativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("expected bytes are written for little-endian hosts")
	}
}

func TestNetlinkEncoding(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		msg  *nlMessage
		want []byte
	}{
		{"link up", linkUpMsg(3), []byte{
			0x20, 0, 0, 0, 0x10, 0, 0x05, 0, 7, 0, 0, 0, 0, 0, 0, 0, // len 32, RTM_NEWLINK, REQUEST|ACK, seq 7
			0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, // AF_UNSPEC, index 3, IFF_UP, change IFF_UP
		}},
		{"add address", addrMsg(unix.RTM_NEWADDR, 2, netip.MustParsePrefix("10.0.2.15/24")), []byte{
			0x30, 0, 0, 0, 0x14, 0, 0x05, 0x05, 7, 0, 0, 0, 0, 0, 0, 0, // len 48, RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE
			2, 24, 0, 0, 2, 0, 0, 0, // AF_INET, /24, flags 0, scope universe, index 2
			8, 0, 2, 0, 10, 0, 2, 15, // IFA_LOCAL
			8, 0, 1, 0, 10, 0, 2, 15, // IFA_ADDRESS
			8, 0, 4, 0, 10, 0, 2, 255, // IFA_BROADCAST
		}},
		{"delete /32 address", addrMsg(unix.RTM_DELADDR, 5, netip.MustParsePrefix("192.168.1.9/32")), []byte{
			0x28, 0, 0, 0, 0x15, 0, 0x05, 0, 7, 0, 0, 0, 0, 0, 0, 0, // len 40, RTM_DELADDR, REQUEST|ACK
			2, 32, 0, 0, 5, 0, 0, 0,
			8, 0, 2, 0, 192, 168, 1, 9,
			8, 0, 1, 0, 192, 168, 1, 9,
		}},
		{"default route", defaultRouteMsg(unix.RTM_NEWROUTE, 2, netip.MustParseAddr("10.0.2.2"), unix.RTPROT_BOOT), []byte{
			0x2c, 0, 0, 0, 0x18, 0, 0x05, 0x05, 7, 0, 0, 0, 0, 0, 0, 0, // len 44, RTM_NEWROUTE
			2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // AF_INET, dst/src len 0, tos 0, main table, proto boot, universe, unicast
			8, 0, 5, 0, 10, 0, 2, 2, // RTA_GATEWAY
			8, 0, 4, 0, 2, 0, 0, 0, // RTA_OIF 2
		}},
	}
	for _, tt := range tests {
		if got := tt.msg.encode(7); !bytes.Equal(got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, tt.want)
		}
	}
	// Attributes whose length is not a multiple of 4 are padded.
	m := &nlMessage{typ: 1}
	m.addAttr(3, []byte("eth0\x00"))
	if got, want := m.encode(1)[sizeofNlmsghdr:], []byte{9, 0, 3, 0, 'e', 't', 'h', '0', 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("padded attribute: got % x, want % x", got, want)
	}
}

func nlErrMsg(seq uint32, errno int32) []byte {
	b := make([]byte, sizeofNlmsghdr+4+sizeofNlmsghdr)
	nativeEndian.PutUint32(b[0:], uint32(len(b)))
	nativeEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
	nativeEndian.PutUint32(b[8:], seq)
	nativeEndian.PutUint32(b[16:], uint32(errno))
	return b
}

func TestParseAck(t *testing.T) {
	other := nlErrMsg(4, 0)
	tests := []struct {
		name    string
		b       []byte
		done    bool
		wantErr error
	}{
		{"ack", nlErrMsg(5, 0), true, nil},
		{"EEXIST", nlErrMsg(5, -int32(unix.EEXIST)), true, unix.EEXIST},
		{"other seq then ours", append(append([]byte(nil), other...), nlErrMsg(5, -int32(unix.ENODEV))...), true, unix.ENODEV},
		{"only other seq", other, false, nil},
		{"empty", nil, false, nil},
	}
	for _, tt := range tests {
		done, err := parseAck(tt.b, 5)
		if done != tt.done || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("%s: parseAck = %v, %v; want %v, %v", tt.name, done, err, tt.done, tt.wantErr)
		}
	}
	bad := nlErrMsg(5, 0)
	nativeEndian.PutUint32(bad[0:], 1000)
	if done, err := parseAck(bad, 5); !done || err == nil {
		t.Errorf("malformed length: parseAck = %v, %v", done, err)
	}
}

func TestNetlinkConfigureInNetns(t *testing.T) {
	ns := netnstest.New(t)
	netnstest.IP(t, "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d0p")
	netnstest.Run(t, ns, func() {
		rt, err := Open()
		if err != nil {
			t.Error(err)
			return
		}
		defer rt.Close()
		ifi, err := net.InterfaceByName("d0")
		if err != nil {
			t.Error(err)
			return
		}
		p := netip.MustParsePrefix("10.9.0.15/24")
		gw := netip.MustParseAddr("10.9.0.2")
		for i := 0; i < 2; i++ { // twice: every step is idempotent
			for _, err := range []error{rt.LinkUp("lo"), rt.LinkUp("d0"), rt.AddAddr(ifi.Index, p), rt.SetDefaultRoute(ifi.Index, gw, unix.RTPROT_BOOT)} {
				if err != nil {
					t.Errorf("pass %d: %v", i, err)
				}
			}
		}
		if err := rt.AddAddr(999999, p); !errors.Is(err, unix.ENODEV) {
			t.Errorf("address on a missing link: error %v, want ENODEV", err)
		}
	})
	if out := netnstest.IP(t, "-n", ns, "-o", "link", "show", "d0"); !strings.Contains(out, ",UP") {
		t.Errorf("d0 not up: %s", out)
	}
	if out := netnstest.IP(t, "-n", ns, "-4", "-o", "addr", "show", "dev", "d0"); !strings.Contains(out, "inet 10.9.0.15/24 brd 10.9.0.255") || strings.Count(out, "inet ") != 1 {
		t.Errorf("d0 addresses: %s", out)
	}
	if out := netnstest.IP(t, "-n", ns, "-d", "route", "show", "default"); !strings.Contains(out, "default via 10.9.0.2 dev d0 proto boot") {
		t.Errorf("default route: %s", out)
	}
	netnstest.Run(t, ns, func() {
		rt, err := Open()
		if err != nil {
			t.Error(err)
			return
		}
		defer rt.Close()
		ifi, err := net.InterfaceByName("d0")
		if err != nil {
			t.Error(err)
			return
		}
		for i := 0; i < 2; i++ {
			if err := rt.DelAddr(ifi.Index, netip.MustParsePrefix("10.9.0.15/24")); err != nil {
				t.Errorf("delete pass %d: %v", i, err)
			}
		}
	})
	if out := netnstest.IP(t, "-n", ns, "-4", "-o", "addr", "show", "dev", "d0"); strings.Contains(out, "inet ") {
		t.Errorf("address still there after delete: %s", out)
	}
}

func TestWaitLinkAppears(t *testing.T) {
	ns := netnstest.New(t)
	added := make(chan error, 1)
	netnstest.Run(t, ns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := WaitLink(ctx, "late0"); err == nil {
			t.Error("WaitLink found a link that does not exist yet")
		}
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		go func() {
			time.Sleep(50 * time.Millisecond)
			added <- exec.Command("ip", "-n", ns, "link", "add", "late0", "type", "veth", "peer", "name", "late0p").Run()
		}()
		ifi, err := WaitLink(ctx, "late0")
		if err != nil {
			t.Error(err)
			return
		}
		if ifi.Name != "late0" {
			t.Errorf("WaitLink returned %s", ifi.Name)
		}
	})
	if err := <-added; err != nil {
		t.Fatal(err)
	}
}
