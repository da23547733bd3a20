package hostproc

import (
	"context"
	"net"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// ServeDocker accepts Docker API clients on l (the instance's docker.sock,
// or its named pipe on Windows) until ctx ends or l fails, and carries
// each connection byte for byte to the guest's Docker API socket: as a
// plain stream through the agent's forwarding gateway when the relay has
// one (Gateway), else over a streamlocal channel of the upstream
// connection. HTTP needs no parsing here, and upgraded connections
// (attach, exec) and half-closes pass as they are. Connections still open
// when ctx ends are closed.
func (r *Relay) ServeDocker(ctx context.Context, l net.Listener) error {
	return sshproto.Serve(ctx, l, func(c net.Conn) { r.relayDocker(ctx, c) })
}

func (r *Relay) relayDocker(ctx context.Context, c net.Conn) {
	// Closing c is enough to end the connection: Join then fails one
	// direction and closes the channel too.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	done, err := r.use(ctx)
	if err != nil {
		if r.Log != nil {
			r.Log.Warn("Docker API connection not relayed", "err", err)
		}
		c.Close()
		return
	}
	defer done()
	if r.Admit != nil {
		if err := r.Admit(); err != nil {
			// A Docker client has no way to read an SSH refusal; a closed
			// connection at once beats one that hangs on a hung guest.
			c.Close()
			return
		}
	}
	if r.Gateway != nil {
		s, err := r.Gateway.DialStream(ctx, api.DockerStream)
		if err == nil {
			portfwd.Join(c, s)
			return
		}
		if r.Log != nil {
			r.Log.Debug("Docker API connection relayed over SSH", "err", err)
		}
	}
	ch, reqs, err := r.upstream.OpenChannel(sshproto.ChanStreamLocal, ssh.Marshal(sshproto.StreamLocal{SocketPath: api.DockerSocket}))
	if err != nil {
		// The client only sees its connection close: the reason (say, a
		// guest image without the Docker API) is for the host log.
		if r.Log != nil {
			r.Log.Warn("Docker API connection not relayed", "err", err)
		}
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	portfwd.Join(c, ch)
}
