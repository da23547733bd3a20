package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot"
)

// serveHost serves SSH where the host reaches the agent (cfg), for as
// long as ctx lasts.
//
// TCP is served on the network interface's address only: that is where
// QEMU's user networking forwards the host's port, and neither loopback
// (containers with the host's network) nor any other interface should
// reach the agent. The address is the one the interface has once the
// network is up; vmconfig.AgentTCP is used with a static address, which
// does not change afterwards.
func serveHost(ctx context.Context, sys *boot.System, cfg vmconfig.Agent, srv *Server) error {
	switch cfg.Transport {
	case vmconfig.AgentTCP:
		st, err := sys.WaitNetwork(ctx)
		if err != nil {
			return fmt.Errorf("agent on tcp: %w", err)
		}
		if !st.Addr.IsValid() {
			return fmt.Errorf("agent on tcp: interface %s has no address", st.Interface)
		}
		addr := netip.AddrPortFrom(st.Addr.Addr(), uint16(cfg.Port))
		l, err := net.Listen("tcp", addr.String())
		if err != nil {
			return fmt.Errorf("agent on tcp: %w", err)
		}
		return srv.Serve(ctx, l)
	case vmconfig.AgentVsock:
		if _, ok, err := sys.Vsock(ctx); err != nil {
			return fmt.Errorf("agent on vsock: %w", err)
		} else if !ok {
			return errors.New("agent on vsock: the VM has no vsock device")
		}
		return serveVsock(ctx, srv, cfg.Port)
	}
	return fmt.Errorf("agent transport %q is not supported", cfg.Transport)
}

// serveVsock accepts SSH connections on AF_VSOCK port.
func serveVsock(ctx context.Context, srv *Server, port uint32) error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return fmt.Errorf("vsock listen: %w", err)
	}
	context.AfterFunc(ctx, func() { unix.Shutdown(fd, unix.SHUT_RDWR) })
	defer unix.Close(fd)
	for {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("vsock accept: %w", err)
		}
		f := os.NewFile(uintptr(nfd), "vsock:"+strconv.FormatUint(uint64(port), 10))
		go func() {
			defer f.Close()
			srv.ServeConn(ctx, &fileConn{File: f})
		}()
	}
}

// fileConn adapts a socket file to net.Conn for the SSH server.
type fileConn struct {
	*os.File
}

type fileAddr string

func (a fileAddr) Network() string { return "file" }
func (a fileAddr) String() string  { return string(a) }

func (c *fileConn) LocalAddr() net.Addr  { return fileAddr(c.Name()) }
func (c *fileConn) RemoteAddr() net.Addr { return fileAddr("host") }
