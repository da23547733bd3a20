package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// hostPorts publishes containers' ports through the host process: it asks
// the host process, over the SSH connection that registered with
// sshproto.ReqForwardHost, for listeners on the host, and serves the
// forwarded connections that come back on api.ForwardPort carrying that
// registration's token.
type hostPorts struct {
	log *slog.Logger

	// streams hands over the streams that sessions await
	// (sshproto.ReqStreamsElsewhere) when they reach the gateway.
	streams portfwd.Rendezvous
	// dockerSocket, when set, is where streams to api.DockerStream go.
	dockerSocket string

	mu      sync.Mutex
	conn    ssh.Conn // the host process's connection; nil until it registers
	gateway *portfwd.Gateway
	changed chan struct{} // closed when conn changes
}

// hostWait bounds how long a publish waits for the host process to
// register: in a VM it registers as its first act.
const hostWait = 10 * time.Second

func newHostPorts(log *slog.Logger, dockerSocket string) *hostPorts {
	return &hostPorts{log: log, dockerSocket: dockerSocket, changed: make(chan struct{})}
}

// awaited takes the gateway's streams to named targets: the Docker API's
// socket, or a session's stdin and stdout.
func (h *hostPorts) awaited(name string) (func(net.Conn), bool) {
	if name == api.DockerStream && h.dockerSocket != "" {
		return h.joinDocker, true
	}
	return h.streams.Claim(name)
}

// joinDocker carries a stream to the guest's Docker API socket until
// either side ends.
func (h *hostPorts) joinDocker(c net.Conn) {
	d, err := net.DialTimeout("unix", h.dockerSocket, dialDockerTimeout)
	if err != nil {
		h.log.Warn("Docker API stream", "err", err)
		c.Close()
		return
	}
	portfwd.Join(c, d)
}

// dialDockerTimeout bounds connecting to the Docker API socket, which
// accepts at once (clients wait in its backlog while the engine opens).
const dialDockerTimeout = 10 * time.Second

// register makes conn the host process's connection, with the token its
// forwarded connections carry.
func (h *hostPorts) register(conn ssh.Conn, payload []byte) error {
	var m sshproto.ForwardHost
	if err := ssh.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("forward-host request: %w", err)
	}
	token, err := hex.DecodeString(m.Token)
	if err != nil || len(token) < 16 {
		return errors.New("forward-host request: the token must be at least 16 bytes, hex")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conn = conn
	h.gateway = &portfwd.Gateway{Token: token, Awaited: h.awaited, Log: h.log}
	close(h.changed)
	h.changed = make(chan struct{})
	go func() {
		// The registration ends with its connection.
		conn.Wait()
		h.mu.Lock()
		if h.conn == conn {
			h.conn, h.gateway = nil, nil
		}
		h.mu.Unlock()
	}()
	return nil
}

// host returns the registered connection, waiting for one until ctx ends.
func (h *hostPorts) host(ctx context.Context) (ssh.Conn, error) {
	for {
		h.mu.Lock()
		conn, changed := h.conn, h.changed
		h.mu.Unlock()
		if conn != nil {
			return conn, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, errors.New("no host process serves published ports")
		}
	}
}

// Publish implements engine.PortPublisher.
func (h *hostPorts) Publish(ctx context.Context, containerID string, ip netip.Addr, ports []api.PortBinding) ([]api.PortBinding, error) {
	ctx, cancel := context.WithTimeout(ctx, hostWait)
	defer cancel()
	conn, err := h.host(ctx)
	if err != nil {
		return nil, err
	}
	req, err := json.Marshal(api.PublishRequest{Container: containerID, IP: ip.String(), Ports: ports})
	if err != nil {
		return nil, err
	}
	ok, payload, err := conn.SendRequest(sshproto.ReqPublish, true, ssh.Marshal(sshproto.JSONMessage{JSON: string(req)}))
	if err != nil {
		return nil, fmt.Errorf("ask the host to publish: %w", err)
	}
	var m sshproto.JSONMessage
	var reply api.PublishReply
	if !ok || ssh.Unmarshal(payload, &m) != nil || json.Unmarshal([]byte(m.JSON), &reply) != nil {
		return nil, errors.New("the host refused to publish ports")
	}
	if reply.Error != "" {
		return nil, errors.New(reply.Error)
	}
	return reply.Ports, nil
}

// Unpublish implements engine.PortPublisher.
func (h *hostPorts) Unpublish(containerID string) {
	h.mu.Lock()
	conn := h.conn
	h.mu.Unlock()
	if conn == nil {
		return // the host's listeners went with its connection
	}
	req, _ := json.Marshal(api.PublishRequest{Container: containerID})
	if _, _, err := conn.SendRequest(sshproto.ReqUnpublish, false, ssh.Marshal(sshproto.JSONMessage{JSON: string(req)})); err != nil {
		h.log.Debug("unpublish", "container", containerID, "err", err)
	}
}

// serve accepts forwarded connections on l until ctx ends.
func (h *hostPorts) serve(ctx context.Context, l net.Listener) error {
	return sshproto.Serve(ctx, l, func(c net.Conn) {
		h.mu.Lock()
		gw := h.gateway
		h.mu.Unlock()
		if gw == nil {
			c.Close() // nobody registered: no token to check against
			return
		}
		gw.ServeConn(ctx, c)
	})
}

// localPorts publishes ports on this machine's own addresses, for an
// engine that runs on it without a VM: the same forwarder and gateway as
// through a VM, joined in-process.
type localPorts struct {
	fwd *portfwd.Forwarder
}

func newLocalPorts(ctx context.Context, log *slog.Logger) (*localPorts, error) {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	gw := &portfwd.Gateway{Token: token, Log: log}
	return &localPorts{fwd: portfwd.NewForwarder(portfwd.LocalDialer(ctx, gw, token), log)}, nil
}

// Publish implements engine.PortPublisher.
func (p *localPorts) Publish(_ context.Context, containerID string, ip netip.Addr, ports []api.PortBinding) ([]api.PortBinding, error) {
	return p.fwd.Publish(containerID, ip, ports)
}

// Unpublish implements engine.PortPublisher.
func (p *localPorts) Unpublish(containerID string) { p.fwd.Unpublish(containerID) }

// Close releases every port.
func (p *localPorts) Close() error { return p.fwd.Close() }
