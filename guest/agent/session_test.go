package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
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

// shoutHandler answers an operation by writing its stdin back in capitals
// on stdout, a line on stderr, and exit code 7.
type shoutHandler struct{}

func (shoutHandler) Serve(_ context.Context, s *Session) int {
	b, _ := io.ReadAll(s.Stdin)
	s.Stdout.Write(bytes.ToUpper(b))
	io.WriteString(s.Stderr, "on stderr")
	return 7
}

// streamGateway serves srv.Streams through a forwarding gateway on a
// loopback port and returns a dialer that reaches it.
func streamGateway(t *testing.T, srv *Server) *portfwd.StreamDialer {
	t.Helper()
	srv.Streams = &portfwd.Rendezvous{}
	token := []byte("gateway token")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go (&portfwd.Gateway{Token: token, Awaited: srv.Streams.Claim}).Serve(ctx, l)
	return &portfwd.StreamDialer{Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
	}}
}

// startOp opens a session channel, asks for its streams on a stream named
// name (when name is set) and returns the channel, its requests and the
// agent's answer to that.
func startOp(t *testing.T, conn ssh.Conn, name string) (ssh.Channel, <-chan *ssh.Request, bool) {
	t.Helper()
	ch, reqs, err := conn.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	if name != "" {
		if ok, err = ch.SendRequest(sshproto.ReqStreamsElsewhere, true, ssh.Marshal(sshproto.StreamsElsewhere{Name: name})); err != nil {
			t.Fatal(err)
		}
	}
	return ch, reqs, ok
}

func execShout(t *testing.T, ch ssh.Channel) {
	t.Helper()
	b, _ := json.Marshal(api.Request{Op: "shout"})
	if ok, err := ch.SendRequest(sshproto.ReqExec, true, ssh.Marshal(sshproto.Exec{Command: string(b)})); err != nil || !ok {
		t.Fatalf("exec: %v %v", ok, err)
	}
}

func exitStatus(t *testing.T, reqs <-chan *ssh.Request) int {
	t.Helper()
	code := -1
	for r := range reqs {
		var m sshproto.ExitStatus
		if r.Type == sshproto.ReqExitStatus && ssh.Unmarshal(r.Payload, &m) == nil {
			code = int(m.Status)
		}
	}
	return code
}

// TestStreamsElsewhere: an operation whose client asked for it reads stdin
// from, and writes stdout to, a stream through the gateway; stderr and
// the exit status stay on the channel, and stdout ends before the status.
func TestStreamsElsewhere(t *testing.T) {
	srv, client := pipeServer(t)
	srv.handler = shoutHandler{}
	dialer := streamGateway(t, srv)
	conn := client()

	ch, reqs, ok := startOp(t, conn, "0123456789abcdef")
	if !ok {
		t.Fatal("the agent refused to carry the streams elsewhere")
	}
	if ok, _ := ch.SendRequest(sshproto.ReqStreamsElsewhere, true, ssh.Marshal(sshproto.StreamsElsewhere{Name: "another"})); ok {
		t.Error("a second stream was granted to one session")
	}
	stream, err := dialer.DialStream(context.Background(), "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	execShout(t, ch)
	io.WriteString(stream, "stdin through the stream")
	stream.(*net.TCPConn).CloseWrite()
	io.WriteString(ch, "stdin on the channel is not read")
	ch.CloseWrite()
	out, err := io.ReadAll(stream)
	if err != nil || string(out) != "STDIN THROUGH THE STREAM" {
		t.Fatalf("stdout on the stream: %q, %v", out, err)
	}
	errOut, _ := io.ReadAll(ch.Stderr())
	chOut, _ := io.ReadAll(ch)
	if string(errOut) != "on stderr" || len(chOut) != 0 {
		t.Errorf("on the channel: stdout %q, stderr %q", chOut, errOut)
	}
	stream.Close()
	if code := exitStatus(t, reqs); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
}

func TestStreamsElsewhereRefusedOrMissing(t *testing.T) {
	t.Run("agent without streams", func(t *testing.T) {
		srv, client := pipeServer(t)
		srv.handler = shoutHandler{}
		ch, reqs, ok := startOp(t, client(), "name")
		if ok {
			t.Fatal("an agent without a gateway granted a stream")
		}
		// The operation goes on with its streams on the channel.
		execShout(t, ch)
		io.WriteString(ch, "on the channel")
		ch.CloseWrite()
		out, _ := io.ReadAll(ch)
		if string(out) != "ON THE CHANNEL" {
			t.Errorf("stdout %q", out)
		}
		if code := exitStatus(t, reqs); code != 7 {
			t.Errorf("exit status %d, want 7", code)
		}
	})
	t.Run("stream never comes", func(t *testing.T) {
		srv, client := pipeServer(t)
		srv.handler = shoutHandler{}
		srv.streamWait = 200 * time.Millisecond
		streamGateway(t, srv)
		ch, reqs, ok := startOp(t, client(), "never")
		if !ok {
			t.Fatal("the agent refused to carry the streams elsewhere")
		}
		execShout(t, ch)
		errOut, _ := io.ReadAll(ch.Stderr())
		if !strings.Contains(string(errOut), "stream never reached") {
			t.Errorf("stderr %q", errOut)
		}
		if code := exitStatus(t, reqs); code != api.ExitEngineError {
			t.Errorf("exit status %d, want %d", code, api.ExitEngineError)
		}
	})
}

// bigOutputHandler writes outputBytes on stdout without reading stdin.
type bigOutputHandler struct{}

const outputBytes = 200 << 10 // fits in loopback socket buffers: read only after the exit status

func (bigOutputHandler) Serve(_ context.Context, s *Session) int {
	s.Stdout.Write(make([]byte, outputBytes))
	return 0
}

// TestStreamsElsewhereOutputSurvivesUnreadInput: stdin the operation never
// read must not reset the stream before the client has all of stdout (a
// socket closed with unread input sends a reset).
func TestStreamsElsewhereOutputSurvivesUnreadInput(t *testing.T) {
	srv, client := pipeServer(t)
	srv.handler = bigOutputHandler{}
	dialer := streamGateway(t, srv)
	for i := range 5 {
		name := fmt.Sprintf("unread-%d", i)
		ch, reqs, ok := startOp(t, client(), name)
		if !ok {
			t.Fatal("the agent refused to carry the streams elsewhere")
		}
		stream, err := dialer.DialStream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		execShout(t, ch)
		stream.Write(make([]byte, 64<<10)) // never read
		// Let the operation end and its channel close first.
		if code := exitStatus(t, reqs); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		time.Sleep(100 * time.Millisecond) // the agent's side is done with the channel
		n, err := io.Copy(io.Discard, stream)
		stream.Close()
		if err != nil || n != outputBytes {
			t.Fatalf("round %d: read %d bytes of stdout, want %d: %v", i, n, outputBytes, err)
		}
	}
}
