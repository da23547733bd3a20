// Package sshproto is the SSH half of the host-guest contract: who may use
// the vmbox SSH service (the agent's server and the host process's relay in
// front of it both present the agent's host key and admit only api.SSHUser
// holding the instance's one authorized key, so a client meets the same rule
// whichever it reaches), how both accept connections (Serve), and the
// payloads of the SSH channel requests the protocol uses (RFC 4254, section
// 6), defined once for the client, the relay and the agent.
package sshproto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
)

// ServerConfig returns a server configuration that presents hostKey and
// admits only user api.SSHUser authenticating with the private half of
// authorized.
func ServerConfig(hostKey ssh.Signer, authorized ssh.PublicKey) *ssh.ServerConfig {
	want := authorized.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == api.SSHUser && bytes.Equal(key.Marshal(), want) {
				return &ssh.Permissions{}, nil
			}
			return nil, fmt.Errorf("key %s for user %q is not authorized", ssh.FingerprintSHA256(key), meta.User())
		},
	}
	cfg.AddHostKey(hostKey)
	return cfg
}

// Serve accepts connections on l and hands each to serve in its own
// goroutine, until ctx ends (then it returns nil) or l fails.
func Serve(ctx context.Context, l net.Listener, serve func(net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go serve(c)
	}
}

// Channel request types of a session channel, and their payloads.
const (
	ReqPTY          = "pty-req"
	ReqEnv          = "env"
	ReqExec         = "exec"
	ReqWindowChange = "window-change"
	ReqSignal       = "signal"
	ReqExitStatus   = "exit-status"
	ReqExitSignal   = "exit-signal"
)

// PTYRequest is the payload of "pty-req".
type PTYRequest struct {
	Term     string
	Cols     uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}

// WindowChange is the payload of "window-change".
type WindowChange struct {
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
}

// ReqStreamsElsewhere (a session channel request, before "exec") asks the
// agent to carry the operation's stdin and stdout, not on the channel, but
// on a stream that will reach its forwarding gateway (api.ForwardPort)
// under the host process's forwarding token and the Target name in the
// payload (StreamsElsewhere). Such a stream is plain TCP: the SSH
// channel's encryption, which under an emulated CPU costs the guest more
// than the bytes' transfer, is not needed on a path that never leaves the
// machine and that only the token's holder can open. Stderr, requests and
// the exit status stay on the channel; stdout ends with the stream's
// half-close, before the exit status. An agent that replies false carries
// the streams on the channel as usual.
const ReqStreamsElsewhere = "streams-elsewhere@vmbox"

// StreamsElsewhere is the payload of ReqStreamsElsewhere.
type StreamsElsewhere struct {
	// Name (16 random bytes, hex) names the stream at the gateway, once.
	Name string
}

// Exec is the payload of "exec": the JSON-encoded api.Request.
type Exec struct{ Command string }

// Signal is the payload of "signal": an SSH signal name without "SIG".
type Signal struct{ Signal string }

// Env is the payload of "env".
type Env struct{ Name, Value string }

// ExitStatus is the payload of "exit-status".
type ExitStatus struct{ Status uint32 }

// ExitSignal is the payload of "exit-signal".
type ExitSignal struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// Global requests (SSH_MSG_GLOBAL_REQUEST) of the vmbox protocol, in the
// "name@domain" form RFC 4250 leaves for local extensions.
const (
	// ReqPing asks the agent to answer at once. The reply's payload is the
	// guest's wall clock (Clock), so one round trip both proves the agent
	// alive and measures the guest clock's drift.
	ReqPing = "ping@vmbox"
	// ReqSetTime sets the guest's wall clock to the Clock in its payload.
	ReqSetTime = "set-time@vmbox"
	// ReqStop asks the instance's host process (never the agent) to stop
	// the VM, escalating after the StopRequest's timeout. It replies once
	// the stop has begun; the VM is gone when the host process is.
	ReqStop = "stop@vmbox"
	// ReqBooted tells the agent that the host process has finished
	// starting the VM (its folders are mounted, the instance is ready):
	// the agent then begins the boot work it held back so as not to
	// compete with the start (the engine, the other CPUs, the late
	// modules). It needs no reply.
	ReqBooted = "booted@vmbox"

	// ReqForwardHost tells the agent that the connection it comes on is
	// the host process's, which publishes container ports on the host:
	// the agent sends it ReqPublish and ReqUnpublish from then on, and
	// admits forwarded connections (api.ForwardPort) that carry the
	// ForwardHost's token.
	ReqForwardHost = "forward-host@vmbox"
	// ReqPublish (agent to host process) asks for listeners on the host
	// for a container's published ports; the payload is a JSONMessage
	// holding an api.PublishRequest, the reply's an api.PublishReply.
	ReqPublish = "publish@vmbox"
	// ReqUnpublish (agent to host process) closes a container's
	// listeners; the payload is a JSONMessage holding an
	// api.PublishRequest without ports.
	ReqUnpublish = "unpublish@vmbox"
	// ReqHostStats asks the host process (never the agent) for its own
	// resource use: the reply is a JSONMessage holding a HostStats.
	ReqHostStats = "host-stats@vmbox"
)

// ChanStreamLocal is the channel type that opens a connection to a Unix
// socket in the guest (OpenSSH's "direct-streamlocal", RFC 4254's
// direct-tcpip for Unix sockets); its extra data is a StreamLocal. The
// agent admits only the sockets it serves for the host: api.DockerSocket.
const ChanStreamLocal = "direct-streamlocal@openssh.com"

// StreamLocal is the extra data of a ChanStreamLocal channel open.
type StreamLocal struct {
	SocketPath string
	Reserved0  string
	Reserved1  uint32
}

// HostStats is the host process's resource use, for leak checks.
type HostStats struct {
	Goroutines int `json:"goroutines"`
	OpenFiles  int `json:"openFiles"` // -1 where the OS does not tell
}

// ForwardHost is the payload of ReqForwardHost.
type ForwardHost struct {
	// Token (32 random bytes, hex) opens every forwarded connection.
	Token string
}

// JSONMessage carries a JSON document in a request or reply payload.
type JSONMessage struct{ JSON string }

// Liveness limits shared by the host process and the CLI.
const (
	// PingInterval is how often the host process pings an idle agent.
	PingInterval = 10 * time.Second
	// SilenceLimit is how long an agent may leave a ping or a new
	// operation unanswered before it is shown as unresponsive and
	// commands stop waiting for it.
	SilenceLimit = 15 * time.Second
)

// Clock is the payload of ReqSetTime and of ReqPing's reply: a wall-clock
// time in nanoseconds since the Unix epoch.
type Clock struct{ UnixNano uint64 }

// NewClock encodes t.
func NewClock(t time.Time) Clock { return Clock{UnixNano: uint64(t.UnixNano())} }

// Time decodes c.
func (c Clock) Time() time.Time { return time.Unix(0, int64(c.UnixNano)) }

// StopRequest is the payload of ReqStop.
type StopRequest struct {
	// TimeoutMillis is how long the guest may take to shut down cleanly
	// before the hypervisor powers it off.
	TimeoutMillis uint64
}

// SendRequest sends a global request that wants a reply on conn and
// returns the reply, or ctx's error once ctx ends first. Giving up leaves
// conn open, and its later global requests wait behind this one, whose
// reply, when it comes, is dropped.
func SendRequest(ctx context.Context, conn ssh.Conn, name string, payload []byte) (ok bool, reply []byte, err error) {
	type answer struct {
		ok    bool
		reply []byte
		err   error
	}
	res := make(chan answer, 1)
	go func() {
		ok, reply, err := conn.SendRequest(name, true, payload)
		res <- answer{ok, reply, err}
	}()
	select {
	case a := <-res:
		return a.ok, a.reply, a.err
	case <-ctx.Done():
		return false, nil, ctx.Err()
	}
}

// Ping sends ReqPing on conn and returns the guest's clock, or an error
// when conn fails or ctx ends first.
func Ping(ctx context.Context, conn ssh.Conn) (time.Time, error) {
	ok, reply, err := SendRequest(ctx, conn, ReqPing, nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("ping: %w", err)
	}
	var c Clock
	if !ok || ssh.Unmarshal(reply, &c) != nil {
		return time.Time{}, errors.New("ping: refused or malformed reply")
	}
	return c.Time(), nil
}

// Size is the requested terminal size (clamped to what a terminal can be).
func (m PTYRequest) Size() api.TermSize { return termSize(m.Rows, m.Cols) }

// Size is the new terminal size (clamped to what a terminal can be).
func (m WindowChange) Size() api.TermSize { return termSize(m.Rows, m.Cols) }

func termSize(rows, cols uint32) api.TermSize {
	return api.TermSize{Rows: uint16(min(rows, 0xffff)), Cols: uint16(min(cols, 0xffff))}
}

// ChanShare is the channel type on which the host process serves a host
// folder to the agent: its extra data is a JSONMessage holding an
// api.Share, and it carries SFTP version 3, the host process serving.
// The agent mounts the share when the channel opens and unmounts it when
// the channel closes.
const ChanShare = "share@vmbox"

// ReqShareEvents (host process to agent) carries changes the host saw
// under its shares: the payload is a JSONMessage holding a JSON array of
// api.ShareEvent.
const ReqShareEvents = "share-events@vmbox"

// ReqShareMounted (agent to host process, on a ChanShare channel) says
// that the share is mounted: the host process mounts the next share only
// then, so that a share inside another lands on top of it.
const ReqShareMounted = "mounted@vmbox"
