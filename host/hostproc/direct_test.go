package hostproc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/vmbox/vmbox/internal/portfwd"
)

// loopbackForwarder "forwards" to a target that is itself a loopback
// listener by handing its address back, and records what it was asked.
type loopbackForwarder struct {
	mu      sync.Mutex
	made    []netip.AddrPort
	removed []netip.AddrPort
	refuse  bool
}

func (f *loopbackForwarder) ForwardToGuest(_ context.Context, target netip.AddrPort) (netip.AddrPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse {
		return netip.AddrPort{}, errors.New("refused")
	}
	f.made = append(f.made, target)
	return target, nil
}

func (f *loopbackForwarder) RemoveForward(_ context.Context, host netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, host)
	return nil
}

// closingListener listens on loopback, closing what it accepts, until the
// test ends.
func closingListener(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func TestDirectForwards(t *testing.T) {
	target := closingListener(t)
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		published bool
		proto     string
		refuse    bool
		direct    bool
	}{
		{name: "published tcp", published: true, proto: "tcp", direct: true},
		{name: "udp takes the gateway", published: true, proto: "udp"},
		{name: "unpublished address", proto: "tcp"},
		{name: "refused forward", published: true, proto: "tcp", refuse: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := &loopbackForwarder{refuse: tc.refuse}
			d := newDirectForwards(vm, slog.New(slog.DiscardHandler))
			if tc.published {
				d.publish("c1", target.Addr())
			}
			for i := 0; i < 3; i++ {
				c, err := d.dial(ctx, portfwd.Target{Proto: tc.proto, Addr: target})
				if tc.direct {
					if err != nil {
						t.Fatalf("dial %d: %v", i, err)
					}
					c.Close()
					continue
				}
				if !errors.Is(err, errNotDirect) {
					t.Fatalf("dial %d = %v, want errNotDirect", i, err)
				}
			}
			d.unpublish("c1")
			d.unpublish("c1") // twice is harmless
			wantMade := 0
			if tc.direct {
				wantMade = 1 // one forward for every connection to the target
			}
			if len(vm.made) != wantMade || len(vm.removed) != wantMade {
				t.Errorf("made %v, removed %v; want %d of each", vm.made, vm.removed, wantMade)
			}
			// After unpublish the target is no one's: the gateway carries it.
			if _, err := d.dial(ctx, portfwd.Target{Proto: "tcp", Addr: target}); !errors.Is(err, errNotDirect) {
				t.Errorf("dial after unpublish = %v, want errNotDirect", err)
			}
		})
	}
}

// TestDirectForwardsConcurrent: many first connections at once make one
// forward.
func TestDirectForwardsConcurrent(t *testing.T) {
	target := closingListener(t)
	vm := &loopbackForwarder{}
	d := newDirectForwards(vm, slog.New(slog.DiscardHandler))
	d.publish("c1", target.Addr())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.dial(context.Background(), portfwd.Target{Proto: "tcp", Addr: target})
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(vm.made) != 1 {
		t.Errorf("made %d forwards, want 1", len(vm.made))
	}
}
