// Package sshauth owns who may use the vmbox SSH service: the agent's
// server and the host process's relay in front of it both present the
// agent's host key and admit only api.SSHUser holding the instance's one
// authorized key, so a client meets the same rule whichever it reaches.
// Both also accept connections the same way (Serve).
//
// It is a package of its own, free of Linux-only code, so that the host
// links this rule without the container engine that package agent brings
// in on Linux.
package sshauth

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
