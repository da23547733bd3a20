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
	"fmt"
	"net"

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
