package qemu

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestForwardToGuest adds and removes forwards on a real QEMU's user
// networking (no guest: slirp accepts the host's connection itself, then
// would carry it to the address inside).
func TestForwardToGuest(t *testing.T) {
	sock, exited := startBareQEMU(t, "-netdev", "user,id="+slirpNetdev)
	v := &VM{name: "test", qmpSocket: sock, done: make(chan struct{})}
	go func() { <-exited; close(v.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; ; i++ {
		if _, err := QMP(ctx, sock, "query-status", nil); err == nil {
			break
		} else if i == 100 {
			t.Fatalf("QEMU never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	target := netip.MustParseAddrPort("172.17.0.2:80")
	host, err := v.ForwardToGuest(ctx, target)
	if err != nil {
		t.Fatalf("ForwardToGuest: %v", err)
	}
	if !host.Addr().IsLoopback() {
		t.Errorf("forward listens on %s, want loopback", host)
	}
	c, err := net.DialTimeout("tcp", host.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the forward: %v", err)
	}
	c.Close()
	other, err := v.ForwardToGuest(ctx, target)
	if err != nil || other == host {
		t.Fatalf("second forward = %v, %v; want another port", other, err)
	}

	if err := v.RemoveForward(ctx, host); err != nil {
		t.Fatalf("RemoveForward: %v", err)
	}
	if c, err := net.DialTimeout("tcp", host.String(), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts after RemoveForward", host)
	}
	if err := v.RemoveForward(ctx, host); err == nil {
		t.Error("removing a forward twice succeeded")
	}
	if _, err := v.ForwardToGuest(ctx, netip.MustParseAddrPort("[fd00::2]:80")); err == nil {
		t.Error("a forward to an IPv6 address succeeded")
	}
}
