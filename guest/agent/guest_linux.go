package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot"
)

// runGuest boots the guest and serves the host until shutdown.
func runGuest(log *slog.Logger) error {
	ctx := context.Background()
	// The kernel starts init with almost no environment; commands the
	// agent runs (shell, mke2fs) are found on the usual PATH.
	os.Setenv("PATH", guestPath)
	cfg, err := vmconfig.Load(vmconfig.Path)
	if err != nil {
		return err
	}
	hostKey, authorized, err := parseKeys([]byte(cfg.HostKey), []byte(cfg.AuthorizedKey))
	if err != nil {
		return err
	}
	sys, err := boot.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	defer sys.Close()
	log.Info("booted", "timings", sys.Timings().String())
	shutdown := make(chan struct{})
	var once sync.Once
	a := &Agent{Log: log, Shutdown: func() { once.Do(func() { close(shutdown) }) }}
	// The data disk may still be formatting; operations that need the
	// engine wait for it, the others (version, shell) do not.
	closeEngine, err := a.openGuestEngine(ctx, sys)
	if err != nil {
		return err
	}
	defer closeEngine()
	a.Trim = NewTrimmer(vmconfig.DataMountPoint, log)
	go a.Trim.Run(ctx)
	srv := NewServer(hostKey, authorized, a, log)
	if cfg.DataDisk.Fresh {
		// First boot: readiness waits for the format, so that the host
		// may record the disk as in use once the agent answers.
		if _, err := sys.WaitDataDisk(ctx); err != nil {
			log.Error("data disk", "err", err)
		}
	}

	// The host reaches the agent over vsock when the VM has it (vz), else
	// over the virtio-serial port (QEMU); never both, so boot waits for
	// neither device in vain.
	_, vsock, err := sys.Vsock(ctx)
	if err != nil {
		log.Warn("vsock unavailable", "err", err)
	}
	if vsock {
		go func() {
			if err := serveVsock(ctx, srv); err != nil {
				log.Error("vsock listener", "err", err)
			}
		}()
	} else {
		go func() {
			if err := serveSerial(ctx, srv, log); err != nil {
				log.Error("virtio-serial", "err", err)
			}
		}()
	}
	// Inside the guest, the same protocol on a Unix socket, with the same
	// keys: for debugging and for measuring the host hop.
	if l, err := listenUnix(GuestSocket); err != nil {
		log.Warn("guest socket", "err", err)
	} else {
		go srv.Serve(ctx, l)
	}
	go func() {
		// Under TCG, onlining a CPU stops the machine for a rendezvous;
		// do it once the host is served, not while it connects.
		select {
		case <-srv.FirstClient():
		case <-ctx.Done():
			return
		}
		if err := sys.OnlineCPUs(); err != nil {
			log.Warn("online CPUs", "err", err)
		}
	}()
	<-shutdown
	log.Info("powering off")
	// Never cut a first format short: an interrupted one leaves the disk
	// unusable until formatted again.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	sys.WaitDataDisk(wctx)
	cancel()
	closeEngine()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return boot.PowerOff(pctx)
}

// GuestSocket is where the agent also listens inside the VM.
const GuestSocket = "/run/vmbox/agent.sock"

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	return l, nil
}

// serveSerial serves SSH on the virtio-serial port, one connection at a
// time, for as long as the VM runs. Each connection starts with the
// hello/ready handshake (see api.SerialHello).
func serveSerial(ctx context.Context, srv *Server, log *slog.Logger) error {
	path, err := boot.FindSerialPort(ctx, api.SerialPortName)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		conn, err := serialHandshake(f)
		if err != nil {
			f.Close()
			if errors.Is(err, io.EOF) {
				// No host connected: virtio-serial reads return EOF until
				// one does. Poll gently.
				time.Sleep(50 * time.Millisecond)
				continue
			}
			log.Warn("virtio-serial handshake", "err", err)
			continue
		}
		srv.ServeConn(ctx, conn)
		f.Close()
	}
	return nil
}

// serialHandshake waits for the host's hello and answers ready.
func serialHandshake(f *os.File) (net.Conn, error) {
	r := bufio.NewReaderSize(f, 64)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == api.SerialHello {
			break
		}
	}
	if _, err := io.WriteString(f, api.SerialReady); err != nil {
		return nil, err
	}
	return &fileConn{File: f, r: r}, nil
}

// serveVsock accepts SSH connections on AF_VSOCK port api.VsockPort.
func serveVsock(ctx context.Context, srv *Server) error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: api.VsockPort}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("vsock bind: %w", err)
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
		f := os.NewFile(uintptr(nfd), "vsock")
		go func() {
			defer f.Close()
			srv.ServeConn(ctx, &fileConn{File: f})
		}()
	}
}

// fileConn adapts a character device or socket file to net.Conn for the
// SSH server. Reads go through r when the handshake buffered some bytes.
type fileConn struct {
	*os.File
	r io.Reader
}

func (c *fileConn) Read(p []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(p)
	}
	return c.File.Read(p)
}

type fileAddr string

func (a fileAddr) Network() string { return "file" }
func (a fileAddr) String() string  { return string(a) }

func (c *fileConn) LocalAddr() net.Addr  { return fileAddr(c.Name()) }
func (c *fileConn) RemoteAddr() net.Addr { return fileAddr("host") }
