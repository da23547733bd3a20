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

// listenHost listens where the host reaches the agent (cfg's transport)
// on port: the agent's SSH port or its forwarding gateway's.
//
// TCP is served on the network interface's address only: that is where
// QEMU's user networking forwards the host's ports, and neither loopback
// (containers with the host's network) nor any other interface (the
// containers' bridges) should reach the agent. The address is the one the
// interface has once the network is up; vmconfig.AgentTCP is used with a
// static address, which does not change afterwards.
func listenHost(ctx context.Context, sys *boot.System, cfg vmconfig.Agent, port uint32) (net.Listener, error) {
	switch cfg.Transport {
	case vmconfig.AgentTCP:
		st, err := sys.WaitNetwork(ctx)
		if err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
		if !st.Addr.IsValid() {
			return nil, fmt.Errorf("tcp: interface %s has no address", st.Interface)
		}
		// No TCP keepalive: the peer is QEMU's user networking on the
		// same machine, which closes the connection when its host side
		// ends, and the host process pings the agent itself. Keepalive
		// timers would only wake an idle guest, every 15 s per
		// connection.
		lc := net.ListenConfig{KeepAlive: -1}
		l, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(st.Addr.Addr(), uint16(port)).String())
		if err != nil {
			return nil, fmt.Errorf("tcp: %w", err)
		}
		return l, nil
	case vmconfig.AgentVsock:
		if _, ok, err := sys.Vsock(ctx); err != nil {
			return nil, fmt.Errorf("vsock: %w", err)
		} else if !ok {
			return nil, errors.New("vsock: the VM has no vsock device")
		}
		return listenVsock(port)
	}
	return nil, fmt.Errorf("agent transport %q is not supported", cfg.Transport)
}

// vsockListener accepts AF_VSOCK connections.
type vsockListener struct {
	fd   int
	port uint32
}

func listenVsock(port uint32) (*vsockListener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock listen: %w", err)
	}
	return &vsockListener{fd: fd, port: port}, nil
}

func (l *vsockListener) Accept() (net.Conn, error) {
	for {
		nfd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			return nil, fmt.Errorf("vsock accept: %w", err)
		}
		f := os.NewFile(uintptr(nfd), "vsock:"+strconv.FormatUint(uint64(l.port), 10))
		return &fileConn{File: f}, nil
	}
}

// Close stops Accept: shutdown wakes a blocked accept, which close alone
// does not.
func (l *vsockListener) Close() error {
	unix.Shutdown(l.fd, unix.SHUT_RDWR)
	return unix.Close(l.fd)
}

func (l *vsockListener) Addr() net.Addr {
	return fileAddr("vsock:" + strconv.FormatUint(uint64(l.port), 10))
}

// fileConn adapts a socket file to net.Conn.
type fileConn struct {
	*os.File
}

// CloseWrite half-closes the stream (a forwarded connection's FIN).
func (c *fileConn) CloseWrite() error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}

type fileAddr string

func (a fileAddr) Network() string { return "file" }
func (a fileAddr) String() string  { return string(a) }

func (c *fileConn) LocalAddr() net.Addr  { return fileAddr(c.Name()) }
func (c *fileConn) RemoteAddr() net.Addr { return fileAddr("host") }
