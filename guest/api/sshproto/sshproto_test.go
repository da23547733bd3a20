package sshproto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// connPair returns the two ends of a Unix socket connection: unlike
// net.Pipe, it buffers, which the SSH handshake needs (both sides send
// their version at once).
func connPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		c.Close()
		t.Fatal("accept failed")
	}
	return s, c
}

func TestServerConfig(t *testing.T) {
	host, client, other := newSigner(t), newSigner(t), newSigner(t)
	cfg := ServerConfig(host, client.PublicKey())

	tests := []struct {
		name string
		user string
		key  ssh.Signer
		ok   bool
	}{
		{"authorized key and user", api.SSHUser, client, true},
		{"other key", api.SSHUser, other, false},
		{"other user", "root", client, false},
		{"empty user", "", client, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, cc := connPair(t)
			defer sc.Close()
			defer cc.Close()
			serverErr := make(chan error, 1)
			go func() {
				conn, _, reqs, err := ssh.NewServerConn(sc, cfg)
				if err == nil {
					go ssh.DiscardRequests(reqs)
					conn.Close()
				}
				sc.Close()
				serverErr <- err
			}()
			var seenHost ssh.PublicKey
			ccfg := &ssh.ClientConfig{
				User: tt.user,
				Auth: []ssh.AuthMethod{ssh.PublicKeys(tt.key)},
				HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
					seenHost = key
					if !bytes.Equal(key.Marshal(), host.PublicKey().Marshal()) {
						return errors.New("unexpected host key")
					}
					return nil
				},
			}
			conn, _, _, err := ssh.NewClientConn(cc, "agent", ccfg)
			if err == nil {
				conn.Close()
			}
			cc.Close()
			sErr := <-serverErr
			if seenHost == nil || !bytes.Equal(seenHost.Marshal(), host.PublicKey().Marshal()) {
				t.Errorf("server presented host key %v, want the given one", seenHost)
			}
			if tt.ok && (err != nil || sErr != nil) {
				t.Fatalf("refused: client %v, server %v", err, sErr)
			}
			if !tt.ok && (err == nil || sErr == nil) {
				t.Fatalf("admitted user %q with key %s", tt.user, ssh.FingerprintSHA256(tt.key.PublicKey()))
			}
		})
	}
}
