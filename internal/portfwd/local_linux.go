package portfwd

import (
	"context"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// LocalDialer reaches targets through gw in this process, over a socket
// pair per stream, for an engine that publishes ports on its own machine:
// the same code path as through a VM, without one.
func LocalDialer(ctx context.Context, gw *Gateway, token []byte) Dialer {
	return func(dctx context.Context, t Target) (net.Conn, error) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("forward to %s: %w", t, err)
		}
		near, err := fileConn(fds[0], "near")
		if err != nil {
			unix.Close(fds[1])
			return nil, err
		}
		far, err := fileConn(fds[1], "far")
		if err != nil {
			near.Close()
			return nil, err
		}
		go gw.ServeConn(ctx, far)
		return DialThrough(dctx, near, token, t)
	}
}

func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileConn dups it
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("socket pair: %w", err)
	}
	return c, nil
}
