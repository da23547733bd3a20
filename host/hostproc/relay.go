package hostproc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// Relay serves CLI connections on a Unix socket and relays each of their
// SSH channels onto the one SSH connection the host process holds to the
// agent, which the host process also watches (pings) and which every CLI
// invocation shares. It relays Docker API clients onto that connection
// too (ServeDocker).
type Relay struct {
	config   *ssh.ServerConfig
	upstream ssh.Conn
	// Use, when set, begins a use of the guest (resuming it if it was
	// paused while idle) that lasts until done is called; every channel,
	// forwarded request and Docker connection is one.
	Use func(ctx context.Context) (done func(), err error)
	// Admit, when set, may refuse a new channel (the agent is silent); its
	// error is the refusal's message.
	Admit func() error
	// Stop, when set, serves sshproto.ReqStop: stop the VM, giving the
	// guest timeout to shut down cleanly.
	Stop func(timeout time.Duration)
	// Stats, when set, serves sshproto.ReqHostStats.
	Stats func() sshproto.HostStats
	// Log, when set, hears why a Docker API connection could not be
	// relayed (ServeDocker), which its client cannot be told.
	Log *slog.Logger
	// Gateway, when set, carries Docker API connections as plain streams
	// through the agent's forwarding gateway instead of inside the SSH
	// connection, whose decryption is the guest's bottleneck under an
	// emulated CPU.
	Gateway *portfwd.StreamDialer
}

// NewRelay makes a relay that presents hostKey (the agent's own, so clients
// verify the same key whether they reach the agent directly or not) and
// admits only authorized, by the agent's own rule (sshproto.ServerConfig).
func NewRelay(hostKey ssh.Signer, authorized ssh.PublicKey, upstream ssh.Conn) *Relay {
	return &Relay{config: sshproto.ServerConfig(hostKey, authorized), upstream: upstream}
}

// Serve accepts clients until ctx ends or l fails.
func (r *Relay) Serve(ctx context.Context, l net.Listener) error {
	return sshproto.Serve(ctx, l, func(c net.Conn) { r.serveConn(ctx, c) })
}

func (r *Relay) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, r.config)
	if err != nil {
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	go func() {
		for req := range reqs {
			if req.Type == sshproto.ReqStop {
				var m sshproto.StopRequest
				ok := r.Stop != nil && ssh.Unmarshal(req.Payload, &m) == nil
				if ok {
					r.Stop(time.Duration(m.TimeoutMillis) * time.Millisecond)
				}
				if req.WantReply {
					req.Reply(ok, nil)
				}
				continue
			}
			if req.Type == sshproto.ReqHostStats {
				if r.Stats == nil {
					req.Reply(false, nil)
					continue
				}
				b, _ := json.Marshal(r.Stats())
				req.Reply(true, ssh.Marshal(sshproto.JSONMessage{JSON: string(b)}))
				continue
			}
			done, err := r.use(ctx)
			if err != nil {
				if req.WantReply {
					req.Reply(false, nil)
				}
				continue
			}
			ok, payload, err := r.upstream.SendRequest(req.Type, req.WantReply, req.Payload)
			done()
			if req.WantReply {
				req.Reply(ok && err == nil, payload)
			}
		}
	}()
	for nc := range chans {
		go r.relayChannel(ctx, nc)
	}
}

// use begins a use of the guest through r.Use, if set.
func (r *Relay) use(ctx context.Context) (done func(), err error) {
	if r.Use == nil {
		return func() {}, nil
	}
	return r.Use(ctx)
}

func (r *Relay) relayChannel(ctx context.Context, nc ssh.NewChannel) {
	done, err := r.use(ctx)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer done()
	if r.Admit != nil {
		if err := r.Admit(); err != nil {
			// ResourceShortage tells the client this is the guest's
			// silence, not a refused operation.
			nc.Reject(ssh.ResourceShortage, err.Error())
			return
		}
	}
	up, upReqs, err := r.upstream.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		reason, msg := ssh.ConnectionFailed, err.Error()
		if oce, ok := err.(*ssh.OpenChannelError); ok {
			reason, msg = oce.Reason, oce.Message
		}
		nc.Reject(reason, msg)
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return
	}
	Splice(down, downReqs, up, upReqs)
}

// Splice joins two SSH channels: data, extended data, EOF and requests flow
// both ways until either side closes. A status request ("exit-status",
// "exit-signal") from b is forwarded only after all of b's output has been
// copied to a, so the client sees every byte before the exit code.
func Splice(a ssh.Channel, aReqs <-chan *ssh.Request, b ssh.Channel, bReqs <-chan *ssh.Request) {
	// EOF covers both streams of a direction, so it is sent only once
	// both have been copied.
	pipe := func(dst, src ssh.Channel) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			io.Copy(dst, src)
		}()
		go func() {
			defer wg.Done()
			io.Copy(dst.Stderr(), src.Stderr())
		}()
		go func() {
			wg.Wait()
			dst.CloseWrite()
		}()
		return &wg
	}
	bOutput := pipe(a, b)
	pipe(b, a)

	// forwarding is held while a request of a's is relayed, so that a is
	// not closed between b's reply and its delivery: a quick operation
	// can finish (and b close) right after b answers "exec".
	var forwarding sync.Mutex
	go func() {
		for req := range aReqs {
			forwarding.Lock()
			ok, _ := b.SendRequest(req.Type, req.WantReply, req.Payload)
			if req.WantReply {
				req.Reply(ok, nil)
			}
			forwarding.Unlock()
		}
		// a closed: the client went away, which the far side must see.
		b.Close()
	}()
	for req := range bReqs {
		if req.Type == "exit-status" || req.Type == "exit-signal" {
			bOutput.Wait()
		}
		ok, _ := a.SendRequest(req.Type, req.WantReply, req.Payload)
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	bOutput.Wait()
	forwarding.Lock()
	a.Close()
	forwarding.Unlock()
}
