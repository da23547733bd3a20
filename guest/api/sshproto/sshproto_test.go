package sshproto

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

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

// sshPair connects an SSH client to a server whose global requests go to
// serve; it returns the client's connection.
func sshPair(t *testing.T, serve func(<-chan *ssh.Request)) ssh.Conn {
	t.Helper()
	host, client := newSigner(t), newSigner(t)
	sc, cc := connPair(t)
	t.Cleanup(func() { sc.Close(); cc.Close() })
	go func() {
		conn, chans, reqs, err := ssh.NewServerConn(sc, ServerConfig(host, client.PublicKey()))
		if err != nil {
			return
		}
		defer conn.Close()
		go func() {
			for nc := range chans {
				nc.Reject(ssh.Prohibited, "no channels here")
			}
		}()
		serve(reqs)
	}()
	conn, chans, reqs, err := ssh.NewClientConn(cc, "agent", &ssh.ClientConfig{
		User: api.SSHUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(client)}, HostKeyCallback: ssh.FixedHostKey(host.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			nc.Reject(ssh.Prohibited, "")
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestSendRequest(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(*ssh.Request)
		wantOK    bool
		wantReply string
		wantErr   error
	}{
		{"answered", func(r *ssh.Request) { r.Reply(true, []byte("yes")) }, true, "yes", nil},
		{"refused", func(r *ssh.Request) { r.Reply(false, nil) }, false, "", nil},
		{"no answer before ctx ends", func(*ssh.Request) {}, false, "", context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := sshPair(t, func(reqs <-chan *ssh.Request) {
				for r := range reqs {
					tt.answer(r)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			ok, reply, err := SendRequest(ctx, conn, "test", nil)
			if ok != tt.wantOK || string(reply) != tt.wantReply || !errors.Is(err, tt.wantErr) {
				t.Fatalf("SendRequest = %v, %q, %v; want %v, %q, %v", ok, reply, err, tt.wantOK, tt.wantReply, tt.wantErr)
			}
		})
	}
}

func TestPing(t *testing.T) {
	guestClock := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name    string
		answer  func(*ssh.Request)
		want    time.Time
		wantErr bool
	}{
		{"clock in the reply", func(r *ssh.Request) { r.Reply(true, ssh.Marshal(NewClock(guestClock))) }, guestClock, false},
		{"refused", func(r *ssh.Request) { r.Reply(false, nil) }, time.Time{}, true},
		{"malformed reply", func(r *ssh.Request) { r.Reply(true, []byte{1, 2}) }, time.Time{}, true},
		{"no answer", func(*ssh.Request) {}, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := sshPair(t, func(reqs <-chan *ssh.Request) {
				for r := range reqs {
					if r.Type != ReqPing {
						r.Reply(false, nil)
						continue
					}
					tt.answer(r)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			got, err := Ping(ctx, conn)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Fatalf("Ping = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestClockRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(0, 1), time.Now(), time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)} {
		var c Clock
		if err := ssh.Unmarshal(ssh.Marshal(NewClock(tm)), &c); err != nil || !c.Time().Equal(tm) {
			t.Errorf("clock %v came back as %v (%v)", tm, c.Time(), err)
		}
	}
	var s StopRequest
	if err := ssh.Unmarshal(ssh.Marshal(StopRequest{TimeoutMillis: 2500}), &s); err != nil || s.TimeoutMillis != 2500 {
		t.Errorf("stop request came back as %+v (%v)", s, err)
	}
}
