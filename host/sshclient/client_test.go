package sshclient

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
)

// guestBehaviour is how a test server treats a session channel.
type guestBehaviour int

const (
	acceptsNothing  guestBehaviour = iota // never answers the channel open
	silentAfterOpen                       // opens the channel, never answers exec
	overloaded                            // refuses the channel as the relay does for a silent agent
	ignoresSignals                        // runs the operation but never acknowledges a signal
)

// testServer serves SSH on a Unix socket with the instance's keys and the
// given behaviour, and returns a client connected to it.
func testServer(t *testing.T, b guestBehaviour) *Client {
	t.Helper()
	return fakeAgent(t, func(ctx context.Context, nc ssh.NewChannel) {
		switch b {
		case acceptsNothing:
			// Hold the open unanswered, as a frozen agent would.
			<-ctx.Done()
			return
		case overloaded:
			nc.Reject(ssh.ResourceShortage, "the guest agent has not answered for 20s")
			return
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for r := range chReqs {
				if b == silentAfterOpen {
					continue // never reply
				}
				if r.Type == sshproto.ReqExec {
					r.Reply(true, nil)
				}
				// ignoresSignals: signal requests get no reply.
			}
		}()
	})
}

// fakeAgent serves SSH on a Unix socket with a new instance's keys, giving
// each channel open to serve in turn, and returns a client connected to
// it.
func fakeAgent(t *testing.T, serve func(ctx context.Context, nc ssh.NewChannel)) *Client {
	t.Helper()
	inst, err := instance.Store{Root: t.TempDir()}.Create(instance.Config{Name: "t", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(inst.Dir, "s.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go sshproto.Serve(ctx, l, func(c net.Conn) {
		defer c.Close()
		conn, chans, reqs, err := ssh.NewServerConn(c, sshproto.ServerConfig(keys.Host, keys.ClientPublic))
		if err != nil {
			return
		}
		defer conn.Close()
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			serve(ctx, nc)
		}
	})
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	c, err := Dial(dctx, socket, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSilentGuestEndsInBoundedTime(t *testing.T) {
	tests := []struct {
		name  string
		guest guestBehaviour
		check func(error) bool
	}{
		{"channel never opens", acceptsNothing, func(err error) bool { var e *NoAnswerError; return errors.As(err, &e) }},
		{"exec never answered", silentAfterOpen, func(err error) bool { var e *NoAnswerError; return errors.As(err, &e) }},
		{"relay refuses", overloaded, func(err error) bool { var e *UnavailableError; return errors.As(err, &e) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testServer(t, tt.guest)
			c.firstAnswer = 300 * time.Millisecond
			start := time.Now()
			_, err := c.Stream(context.Background(), "version", nil, IO{})
			if !tt.check(err) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("took %s", took)
			}
		})
	}
}

func TestUnacknowledgedSignalEndsTheWait(t *testing.T) {
	if testing.Short() {
		t.Skip("waits SignalLimit")
	}
	c := testServer(t, ignoresSignals)
	sigs := make(chan string, 1)
	sigs <- "INT"
	start := time.Now()
	_, err := c.Stream(context.Background(), "run", nil, IO{Signals: sigs})
	if !errors.Is(err, ErrSignalNotTaken) {
		t.Fatalf("err = %v, want ErrSignalNotTaken", err)
	}
	if took := time.Since(start); took < SignalLimit || took > SignalLimit+3*time.Second {
		t.Fatalf("gave up after %s, want about %s", took, SignalLimit)
	}
}

// TestNewServingAnswersTheAgent checks that the agent's own requests reach
// the handler, in order, and that its replies go back.
func TestNewServingAnswersTheAgent(t *testing.T) {
	inst, err := instance.Store{Root: t.TempDir()}.Create(instance.Config{Name: "t", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	// A real socket: net.Pipe is unbuffered, and both sides of an SSH
	// handshake write their version line before reading.
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hostSide, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	agentSide, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		ok      bool
		payload string
		err     error
	}
	answers := make(chan answer, 1)
	go func() {
		conn, chans, reqs, err := ssh.NewServerConn(agentSide, sshproto.ServerConfig(keys.Host, keys.ClientPublic))
		if err != nil {
			answers <- answer{err: err}
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				nc.Reject(ssh.Prohibited, "")
			}
		}()
		conn.SendRequest("first@test", false, nil)
		ok, payload, err := conn.SendRequest("second@test", true, []byte("ping"))
		answers <- answer{ok, string(payload), err}
	}()
	seen := make(chan string, 2)
	// The agent's server must take the emulated-CPU preference.
	c, err := NewServing(hostSide, keys, EmulatedCPUCiphers(), func(req *ssh.Request) (bool, []byte) {
		seen <- req.Type
		return req.Type == "second@test", append([]byte("pong:"), req.Payload...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case a := <-answers:
		if a.err != nil || !a.ok || a.payload != "pong:ping" {
			t.Fatalf("the agent got %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's request was never answered")
	}
	if first, second := <-seen, <-seen; first != "first@test" || second != "second@test" {
		t.Errorf("handler saw %s then %s", first, second)
	}
}
