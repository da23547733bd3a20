package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
)

// TestBooted checks when the boot work held back for the host's start is
// released: not at the handshake, but at sshproto.ReqBooted, or after the
// fallback (counted from the connection) when that never comes.
func TestBooted(t *testing.T) {
	for _, tt := range []struct {
		name       string
		sendBooted bool
	}{{"host says booted", true}, {"fallback", false}} {
		t.Run(tt.name, func(t *testing.T) {
			srv, client := pipeServer(t)
			// With the request, a fallback that cannot come in time, so
			// that only the request can close Booted.
			srv.fallback = time.Hour
			if !tt.sendBooted {
				srv.fallback = time.Second
			}
			conn := client()
			select {
			case <-srv.Booted():
				t.Fatal("Booted closed at the handshake")
			case <-time.After(200 * time.Millisecond):
			}
			if tt.sendBooted {
				if _, _, err := conn.SendRequest(sshproto.ReqBooted, true, nil); err != nil {
					t.Fatalf("send %s: %v", sshproto.ReqBooted, err)
				}
			}
			select {
			case <-srv.Booted():
			case <-time.After(5 * time.Second):
				t.Fatal("Booted never closed")
			}
		})
	}
}

// pipeServer makes a Server and a function that connects an authorized
// client to it.
func pipeServer(t *testing.T) (*Server, func() ssh.Conn) {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, _ := ssh.NewSignerFromKey(clientPriv)
	authorized, _ := ssh.NewPublicKey(clientPub)
	srv := NewServer(hostKey, authorized, nil, slog.New(slog.DiscardHandler))
	return srv, func() ssh.Conn {
		// Over TCP: a net.Pipe would deadlock, both sides writing their
		// banners first.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			if a, err := l.Accept(); err == nil {
				srv.ServeConn(ctx, a)
			}
		}()
		b, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cfg := &ssh.ClientConfig{User: "vmbox", Auth: []ssh.AuthMethod{ssh.PublicKeys(clientKey)}, HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey())}
		conn, chans, reqs, err := ssh.NewClientConn(b, "agent", cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				nc.Reject(ssh.Prohibited, "")
			}
		}()
		t.Cleanup(func() { conn.Close(); cancel() })
		return conn
	}
}
