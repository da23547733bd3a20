package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// DialInterval is the pause between two attempts of DialRetry: short,
// because a guest that has just started listening should be reached at
// once, and each attempt is cheap (a loopback or vsock connect).
const DialInterval = 100 * time.Millisecond

// ErrVMExited is what DialRetry returns (wrapped) when the VM exits before
// a connection is made; the driver replaces it with the reason for the exit.
var ErrVMExited = errors.New("the VM exited")

// DialRetry calls dial until it returns a connection, ctx ends, or exited
// is closed, DialInterval apart. dial must bound each attempt itself (the
// guest may accept and then say nothing) and should honour ctx. The error
// names the last attempt's failure, wrapping ctx's error or ErrVMExited.
func DialRetry(ctx context.Context, dial func(context.Context) (net.Conn, error), exited <-chan struct{}) (net.Conn, error) {
	var lastErr error
	fail := func(cause error) (net.Conn, error) {
		if lastErr == nil {
			return nil, cause
		}
		return nil, fmt.Errorf("%w (last error: %v)", cause, lastErr)
	}
	for {
		select {
		case <-exited:
			return fail(ErrVMExited)
		default:
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		c, err := dial(ctx)
		if err == nil {
			return c, nil
		}
		lastErr = err
		t := time.NewTimer(DialInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		case <-exited:
			t.Stop()
			return fail(ErrVMExited)
		case <-t.C:
		}
	}
}
