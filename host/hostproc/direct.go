package hostproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// directForwards carries published TCP ports' connections through
// forwards the hypervisor makes straight to a container's address
// (driver.GuestForwarder), so that the guest's kernel routes them instead
// of the forwarding gateway receiving and sending every byte again. A
// forward is made on its target's first connection (a container may
// publish a hundred ports and use two) and removed when the container's
// ports are unpublished. Only targets of published containers get one.
type directForwards struct {
	vm  driver.GuestForwarder
	log *slog.Logger

	mu       sync.Mutex
	owners   map[string]netip.Addr // container ID → the address its ports forward to
	byTarget map[netip.AddrPort]*directForward
}

// directForward is one forward, being made until ready is closed.
type directForward struct {
	ready chan struct{}
	host  netip.AddrPort // where to connect; set with err before ready closes
	err   error
}

// errNotDirect says a target has no direct forward: the gateway carries it.
var errNotDirect = errors.New("no direct forward")

// forwardTimeout bounds making or removing one forward.
const forwardTimeout = 10 * time.Second

func newDirectForwards(vm driver.GuestForwarder, log *slog.Logger) *directForwards {
	return &directForwards{
		vm: vm, log: log,
		owners:   make(map[string]netip.Addr),
		byTarget: make(map[netip.AddrPort]*directForward),
	}
}

// publish records that containerID's ports forward to ip.
func (d *directForwards) publish(containerID string, ip netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.owners[containerID] = ip
}

// unpublish removes the forwards to containerID's address.
func (d *directForwards) unpublish(containerID string) {
	d.mu.Lock()
	ip, ok := d.owners[containerID]
	delete(d.owners, containerID)
	var gone []*directForward
	if ok {
		for t, f := range d.byTarget {
			if t.Addr() == ip {
				gone = append(gone, f)
				delete(d.byTarget, t)
			}
		}
	}
	d.mu.Unlock()
	for _, f := range gone {
		<-f.ready
		if f.err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
		if err := d.vm.RemoveForward(ctx, f.host); err != nil {
			d.log.Warn("remove a published port's forward", "err", err)
		}
		cancel()
	}
}

// dial connects to t through its forward, making the forward on t's first
// connection. It returns errNotDirect (wrapped) when t has none and cannot
// have one: a UDP target, an address no published container has, or a
// forward the hypervisor refused.
func (d *directForwards) dial(ctx context.Context, t portfwd.Target) (net.Conn, error) {
	if t.Proto != "tcp" {
		return nil, errNotDirect
	}
	f, err := d.forward(ctx, t.Addr)
	if err != nil {
		return nil, err
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", f.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotDirect, err)
	}
	return c, nil
}

// forward returns the host address of target's forward, making it if
// there is none yet.
func (d *directForwards) forward(ctx context.Context, target netip.AddrPort) (netip.AddrPort, error) {
	d.mu.Lock()
	f, ok := d.byTarget[target]
	if !ok {
		if !d.owned(target.Addr()) {
			d.mu.Unlock()
			return netip.AddrPort{}, errNotDirect
		}
		f = &directForward{ready: make(chan struct{})}
		d.byTarget[target] = f
		d.mu.Unlock()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forwardTimeout)
		f.host, f.err = d.vm.ForwardToGuest(fctx, target)
		cancel()
		if f.err != nil {
			d.log.Warn("published port carried by the forwarding gateway", "target", target, "err", f.err)
		}
		close(f.ready)
	} else {
		d.mu.Unlock()
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		return netip.AddrPort{}, ctx.Err()
	}
	if f.err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %v", errNotDirect, f.err)
	}
	return f.host, nil
}

// owned reports whether a published container's ports forward to ip.
// Call with d.mu held.
func (d *directForwards) owned(ip netip.Addr) bool {
	for _, a := range d.owners {
		if a == ip {
			return true
		}
	}
	return false
}
