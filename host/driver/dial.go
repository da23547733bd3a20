package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// DialInterval is the time between two attempts of DialRetry: short,
// because a guest that has just started listening should be reached at
// once, and each attempt is cheap (a loopback or vsock connect, refused by
// a guest not yet listening).
const DialInterval = 25 * time.Millisecond

// ErrVMExited is what DialRetry returns (wrapped) when the VM exits before
// a connection is made; the driver replaces it with the reason for the exit.
var ErrVMExited = errors.New("the VM exited")

// maxPendingDials bounds DialRetry's attempts in flight at once: enough
// for an attempt every DialInterval over a few seconds of hung ones.
const maxPendingDials = 128

// DialRetry starts an attempt with dial every DialInterval, without waiting
// for earlier ones to end, until one returns a connection, ctx ends, or
// exited is closed. Attempts overlap because one may hang rather than fail:
// QEMU's user networking accepts the host's connection at once and only then
// sends its SYN to the guest, so an attempt made before the guest's
// interface is up waits on a SYN retransmission timer, while a fresh attempt
// is answered as soon as the guest listens. dial must bound each attempt
// itself and should honour ctx; attempts still in flight when one succeeds
// are cancelled and their connections closed. The error names the last
// attempt's failure, wrapping ctx's error or ErrVMExited.
func DialRetry(ctx context.Context, dial func(context.Context) (net.Conn, error), exited <-chan struct{}) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	actx, cancel := context.WithCancel(ctx)
	results := make(chan result)
	pending := 0
	// Whatever returns, the attempts still in flight end (cancelled) and a
	// connection one of them made late is closed.
	defer func() {
		cancel()
		go func(n int) {
			for ; n > 0; n-- {
				if r := <-results; r.c != nil {
					r.c.Close()
				}
			}
		}(pending)
	}()
	start := func() {
		pending++
		go func() {
			c, err := dial(actx)
			results <- result{c, err}
		}()
	}
	var lastErr error
	fail := func(cause error) (net.Conn, error) {
		if lastErr == nil {
			return nil, cause
		}
		return nil, fmt.Errorf("%w (last error: %v)", cause, lastErr)
	}
	select {
	case <-exited:
		return fail(ErrVMExited)
	default:
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	start()
	tick := time.NewTicker(DialInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				return r.c, nil
			}
			lastErr = r.err
		case <-tick.C:
			if pending < maxPendingDials {
				start()
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-exited:
			return fail(ErrVMExited)
		}
	}
}
