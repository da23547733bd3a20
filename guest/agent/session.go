package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// PTYRequest is what a client asked for with "pty-req".
type PTYRequest struct {
	Term string
	Size api.TermSize
}

// Session is one operation: the request and its streams. Handlers read
// Stdin, write Stdout and Stderr, watch Resize and Signals, and return the
// exit code.
type Session struct {
	Request api.Request
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer // the same stream as Stdout when PTY is set
	PTY     *PTYRequest
	Env     []string
	Resize  <-chan api.TermSize
	Signals <-chan string // SSH signal names without "SIG": "INT", "TERM", ...
}

// Handler serves operations.
type Handler interface {
	Serve(ctx context.Context, s *Session) int
}

// Server accepts SSH connections from the host and turns each session
// channel into a call of its Handler.
type Server struct {
	config  *ssh.ServerConfig
	handler Handler
	log     *slog.Logger

	booted     chan struct{} // closed by sshproto.ReqBooted (or fallback)
	bootedOnce sync.Once
	firstOnce  sync.Once     // arms the fallback at the first connection
	fallback   time.Duration // bootedFallback, shorter in tests
	streamWait time.Duration // defaultStreamWait, shorter in tests

	// ForwardHost, when set, serves sshproto.ReqForwardHost: conn is the
	// host process's connection, which publishes containers' ports.
	ForwardHost func(conn ssh.Conn, payload []byte) error
	// DockerSocket, when set, is the one Unix socket that
	// sshproto.ChanStreamLocal channels may open: the Docker API's.
	DockerSocket string
	// Shares, when set, mounts the host folders that sshproto.ChanShare
	// channels serve and replays sshproto.ReqShareEvents.
	Shares ShareMounter
	// Streams, when set, serves sshproto.ReqStreamsElsewhere: it is where
	// the forwarding gateway hands over the streams that sessions await.
	Streams *portfwd.Rendezvous
}

// ShareMounter mounts host folders in the VM.
type ShareMounter interface {
	// Mount mounts sh, served over ch, until ch closes.
	Mount(ctx context.Context, sh api.Share, ch io.ReadWriteCloser) error
	// Replay makes changes the host saw under its shares seen in the VM.
	Replay(evs []api.ShareEvent)
}

// NewServer makes a server that presents hostKey and admits only clients
// holding the private half of authorized (see sshproto.ServerConfig).
func NewServer(hostKey ssh.Signer, authorized ssh.PublicKey, h Handler, log *slog.Logger) *Server {
	return &Server{config: sshproto.ServerConfig(hostKey, authorized), handler: h, log: log, booted: make(chan struct{}), fallback: bootedFallback, streamWait: defaultStreamWait}
}

// bootedFallback is how long after the first connection Booted closes
// when no sshproto.ReqBooted came (a host process that failed half way
// through the start must not leave the engine closed and the power button
// unheard).
const bootedFallback = 10 * time.Second

// Booted is closed once the host process says it has finished starting the
// VM (sshproto.ReqBooted), or bootedFallback after the first connection:
// boot work that the host's start does not need waits for it, so that it
// does not compete with that start for the CPU (under TCG the SSH
// handshake took three times as long beside it).
func (s *Server) Booted() <-chan struct{} { return s.booted }

func (s *Server) markBooted() { s.bootedOnce.Do(func() { close(s.booted) }) }

// ClockSetter is implemented by handlers that can set the system clock
// (the agent in the VM); the host process uses it to correct drift.
type ClockSetter interface {
	SetClock(time.Time) error
}

// serveGlobalRequests answers the connection-level requests of the
// protocol: pings (with the guest's clock) and clock settings.
func (s *Server) serveGlobalRequests(conn ssh.Conn, reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case sshproto.ReqForwardHost:
			if s.ForwardHost == nil {
				req.Reply(false, nil)
				continue
			}
			if err := s.ForwardHost(conn, req.Payload); err != nil {
				s.log.Warn("forward host", "err", err)
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
		case sshproto.ReqBooted:
			s.markBooted()
			if req.WantReply {
				req.Reply(true, nil)
			}
		case sshproto.ReqPing:
			req.Reply(true, ssh.Marshal(sshproto.NewClock(time.Now())))
		case sshproto.ReqShareEvents:
			var m sshproto.JSONMessage
			var evs []api.ShareEvent
			ok := s.Shares != nil && ssh.Unmarshal(req.Payload, &m) == nil && json.Unmarshal([]byte(m.JSON), &evs) == nil
			if ok {
				s.Shares.Replay(evs)
			}
			if req.WantReply {
				req.Reply(ok, nil)
			}
		case sshproto.ReqSetTime:
			var c sshproto.Clock
			setter, ok := s.handler.(ClockSetter)
			if !ok || ssh.Unmarshal(req.Payload, &c) != nil {
				req.Reply(false, nil)
				continue
			}
			if err := setter.SetClock(c.Time()); err != nil {
				s.log.Warn("set clock", "err", err)
				req.Reply(false, nil)
				continue
			}
			s.log.Info("clock set by host", "time", c.Time().UTC().Format(time.RFC3339Nano))
			req.Reply(true, nil)
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// Serve accepts connections on l until ctx ends or l fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return sshproto.Serve(ctx, l, func(c net.Conn) { s.ServeConn(ctx, c) })
}

// ServeConn runs one SSH connection until it closes.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	s.firstOnce.Do(func() { time.AfterFunc(s.fallback, s.markBooted) })
	conn, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			// The host's spare connection attempts, closed unused once one
			// of them got through.
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "ssh handshake failed", "remote", c.RemoteAddr(), "err", err)
		return
	}
	defer conn.Close()
	go s.serveGlobalRequests(conn, reqs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	for nc := range chans {
		if nc.ChannelType() == sshproto.ChanStreamLocal {
			go s.serveStreamLocal(ctx, nc)
			continue
		}
		if nc.ChannelType() == sshproto.ChanShare {
			go s.serveShare(ctx, nc)
			continue
		}
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session and streamlocal channels are served")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go s.serveSession(ctx, ch, chReqs)
	}
}

// serveShare mounts the host folder a ChanShare channel serves. A mount
// that fails closes the channel after saying why on its stderr.
func (s *Server) serveShare(ctx context.Context, nc ssh.NewChannel) {
	var m sshproto.JSONMessage
	var sh api.Share
	if s.Shares == nil {
		nc.Reject(ssh.Prohibited, "this agent mounts no host folders")
		return
	}
	if ssh.Unmarshal(nc.ExtraData(), &m) != nil || json.Unmarshal([]byte(m.JSON), &sh) != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed share")
		return
	}
	if err := api.CheckShareGuestPath(sh.GuestPath); err != nil {
		nc.Reject(ssh.Prohibited, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	if err := s.Shares.Mount(ctx, sh, ch); err != nil {
		s.log.Warn("mount a host folder", "share", sh.GuestPath, "err", err)
		io.WriteString(ch.Stderr(), err.Error())
		ch.Close()
		return
	}
	ch.SendRequest(sshproto.ReqShareMounted, false, nil)
}

func (s *Server) serveSession(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resize := make(chan api.TermSize, 4)
	signals := make(chan string, 8)
	sess := &Session{Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Resize: resize, Signals: signals}
	started := make(chan struct{})
	var once sync.Once
	start := func(req api.Request) {
		once.Do(func() {
			sess.Request = req
			close(started)
		})
	}
	// elsewhere, once set (before started closes), receives the stream
	// that carries stdin and stdout instead of the channel.
	var elsewhere <-chan net.Conn
	go func() {
		// Requests keep flowing while the operation runs: resizes and
		// signals. When the channel closes, the operation is cancelled.
		defer cancel()
		begun := false // pty-req and env only count before the operation starts
		for req := range reqs {
			ok := true
			var begin *api.Request
			switch req.Type {
			case "pty-req":
				if begun {
					ok = false
					break
				}
				var m sshproto.PTYRequest
				if err := ssh.Unmarshal(req.Payload, &m); err != nil {
					ok = false
					break
				}
				sess.PTY = &PTYRequest{Term: m.Term, Size: m.Size()}
			case "env":
				var m sshproto.Env
				if !begun && ssh.Unmarshal(req.Payload, &m) == nil {
					sess.Env = append(sess.Env, m.Name+"="+m.Value)
				}
			case "window-change":
				var m sshproto.WindowChange
				if ssh.Unmarshal(req.Payload, &m) == nil {
					select {
					case resize <- m.Size():
					default: // a newer size will follow; never block the request loop
					}
				}
			case "signal":
				var m sshproto.Signal
				ok = false // the reply says the signal was taken
				if ssh.Unmarshal(req.Payload, &m) == nil {
					select {
					case signals <- m.Signal:
						ok = true
					default:
					}
				}
			case sshproto.ReqStreamsElsewhere:
				var m sshproto.StreamsElsewhere
				if begun || elsewhere != nil || s.Streams == nil || ssh.Unmarshal(req.Payload, &m) != nil || m.Name == api.DockerStream {
					ok = false
					break
				}
				streams, forget, err := s.Streams.Expect(m.Name)
				if err != nil {
					ok = false
					break
				}
				defer forget()
				elsewhere = streams
			case "exec":
				if begun {
					ok = false // one operation per channel
					break
				}
				var m sshproto.Exec
				var r api.Request
				if err := ssh.Unmarshal(req.Payload, &m); err != nil {
					ok = false
				} else if err := json.Unmarshal([]byte(m.Command), &r); err != nil || r.Op == "" {
					ok = false
				} else {
					begin = &r
				}
			case "shell":
				if begun {
					ok = false
					break
				}
				begin = &api.Request{Op: api.OpShell}
			default:
				ok = false
			}
			// The reply goes out before the operation starts: a quick one
			// could otherwise end and close the channel first, and the
			// client would take the lost reply for a refusal.
			if req.WantReply {
				req.Reply(ok, nil)
			}
			if begin != nil {
				begun = true
				start(*begin)
			}
		}
	}()
	select {
	case <-started:
	case <-ctx.Done():
		ch.Close()
		return
	}
	var stream net.Conn
	stopClosing := func() bool { return false }
	if elsewhere != nil {
		var err error
		if stream, err = awaitStream(ctx, elsewhere, s.streamWait); err != nil {
			s.log.Warn("session", "err", err)
			fmt.Fprintf(ch.Stderr(), "vmbox: %v\n", err)
			ch.CloseWrite()
			ch.SendRequest("exit-status", false, ssh.Marshal(sshproto.ExitStatus{Status: api.ExitEngineError}))
			ch.Close()
			return
		}
		// An operation blocked on the stream ends with the session.
		stopClosing = context.AfterFunc(ctx, func() { stream.Close() })
		sess.Stdin, sess.Stdout = stream, stream
	}
	if sess.PTY != nil {
		sess.Stderr = sess.Stdout
	}
	code := s.handler.Serve(ctx, sess)
	// EOF before exit-status, so that a relay forwarding both sees all
	// output before the status.
	if stream != nil {
		// From here the stream closes only once drained (below): the
		// session's end, which follows the exit status, must not reset
		// it under output still in flight.
		stopClosing()
		closeWrite(stream)
	}
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(sshproto.ExitStatus{Status: uint32(code)}))
	ch.Close()
	if stream != nil {
		drainAndClose(stream, s.streamWait)
	}
}

// defaultStreamWait bounds the wait for a session's stream, which the
// client opened before it sent "exec", and for the client to close it
// after the exit status.
const defaultStreamWait = 10 * time.Second

func awaitStream(ctx context.Context, streams <-chan net.Conn, wait time.Duration) (net.Conn, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case c := <-streams:
		return c, nil
	case <-t.C:
		return nil, errors.New("the operation's stream never reached the forwarding gateway")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// drainAndClose closes a session's stream once the client has read it to
// its end and closed its own side. Closing it at once would reset it while
// the client may still be reading the last output: a socket closed with
// unread input (stdin the operation never read) sends a reset, which can
// overtake data in flight. The client closes its side after the exit
// status.
func drainAndClose(c net.Conn, wait time.Duration) {
	c.SetReadDeadline(time.Now().Add(wait))
	io.Copy(io.Discard, c)
	c.Close()
}

// serveStreamLocal joins a ChanStreamLocal channel to the Unix socket it
// names, which must be DockerSocket: no other guest socket is the host's
// to reach.
func (s *Server) serveStreamLocal(ctx context.Context, nc ssh.NewChannel) {
	var m sshproto.StreamLocal
	if err := ssh.Unmarshal(nc.ExtraData(), &m); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed streamlocal request")
		return
	}
	if s.DockerSocket == "" || m.SocketPath != s.DockerSocket {
		nc.Reject(ssh.Prohibited, "socket "+m.SocketPath+" is not served to the host")
		return
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", m.SocketPath)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	portfwd.Join(ch, c)
}
