package hostproc

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
	"os"
	"runtime"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// ports publishes containers' ports on the host for the agent: it listens
// where a publish request says and carries each connection to the agent's
// forwarding gateway (driver.VM.DialForward) under a token only this
// process and the agent know, or, for TCP where the hypervisor can
// forward to a guest address, straight to the container.
type ports struct {
	fwd    *portfwd.Forwarder
	direct *directForwards // nil when the hypervisor cannot
	token  []byte
	log    *slog.Logger
}

func newPorts(vm driver.VM, log *slog.Logger) (*ports, error) {
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("forwarding token: %w", err)
	}
	var direct *directForwards
	if gf, ok := vm.(driver.GuestForwarder); ok {
		direct = newDirectForwards(gf, log)
	}
	dial := func(ctx context.Context, t portfwd.Target) (net.Conn, error) {
		if direct != nil {
			c, err := direct.dial(ctx, t)
			if err == nil || !errors.Is(err, errNotDirect) {
				return c, err
			}
		}
		c, err := vm.DialForward(ctx)
		if err != nil {
			return nil, fmt.Errorf("reach the VM's forwarding port: %w", err)
		}
		return portfwd.DialThrough(ctx, c, token, t)
	}
	return &ports{fwd: portfwd.NewForwarder(dial, log), direct: direct, token: token, log: log}, nil
}

// register makes the agent send this process its publish requests.
func (p *ports) register(conn ssh.Conn) error {
	ok, _, err := conn.SendRequest(sshproto.ReqForwardHost, true, ssh.Marshal(sshproto.ForwardHost{Token: hex.EncodeToString(p.token)}))
	if err != nil {
		return fmt.Errorf("register for published ports: %w", err)
	}
	if !ok {
		return errors.New("register for published ports: the agent refused")
	}
	return nil
}

// serve answers the agent's publish and unpublish requests.
func (p *ports) serve(req *ssh.Request) (bool, []byte) {
	var m sshproto.JSONMessage
	var pr api.PublishRequest
	if req.Type != sshproto.ReqPublish && req.Type != sshproto.ReqUnpublish {
		return false, nil
	}
	if err := ssh.Unmarshal(req.Payload, &m); err != nil || json.Unmarshal([]byte(m.JSON), &pr) != nil || pr.Container == "" {
		p.log.Warn("malformed request from the agent", "type", req.Type)
		return false, nil
	}
	if req.Type == sshproto.ReqUnpublish {
		p.fwd.Unpublish(pr.Container)
		if p.direct != nil {
			p.direct.unpublish(pr.Container)
		}
		return true, nil
	}
	var reply api.PublishReply
	ip, err := netip.ParseAddr(pr.IP)
	if err != nil {
		reply.Error = fmt.Sprintf("publish: container address %q: %v", pr.IP, err)
	} else if reply.Ports, err = p.fwd.Publish(pr.Container, ip, pr.Ports); err != nil {
		reply.Error = err.Error()
	} else if p.direct != nil {
		p.direct.publish(pr.Container, ip)
	}
	b, _ := json.Marshal(reply)
	return true, ssh.Marshal(sshproto.JSONMessage{JSON: string(b)})
}

func (p *ports) close() { p.fwd.Close() }

// hostStats reports this process's goroutines and open files, for the
// leak checks of forwarded connections.
func hostStats() sshproto.HostStats {
	// The net package keeps the pipes it splices TCP through in a pool
	// that only a collection empties: without one, those descriptors
	// would look like a leak of the connections that used them.
	runtime.GC()
	st := sshproto.HostStats{Goroutines: runtime.NumGoroutine(), OpenFiles: -1}
	if runtime.GOOS != "windows" {
		if ents, err := os.ReadDir("/dev/fd"); err == nil {
			st.OpenFiles = len(ents) - 1 // less the directory being read
		}
	}
	return st
}
