package sshclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// streamingAgent stands in for the agent's side of
// sshproto.ReqStreamsElsewhere: each operation echoes its stdin in
// capitals on stdout, from and to the stream when one was asked for, and
// exits 3. It records what reached it on channels' own data.
type streamingAgent struct {
	rv portfwd.Rendezvous
	// breakStream, when set, ends the stream its way instead of with a
	// half-close after stdout, then sends exit status 0 all the same.
	breakStream func(stream *net.TCPConn)

	mu          sync.Mutex
	onChannel   []string // stdin read from channel data, per operation
	streamsAsks int
}

func (a *streamingAgent) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var streams <-chan net.Conn
	execed := make(chan struct{})
	go func() {
		for r := range reqs {
			switch r.Type {
			case sshproto.ReqStreamsElsewhere:
				var m sshproto.StreamsElsewhere
				ssh.Unmarshal(r.Payload, &m)
				s, forget, err := a.rv.Expect(m.Name)
				if err == nil {
					defer forget()
					streams = s
				}
				a.mu.Lock()
				a.streamsAsks++
				a.mu.Unlock()
				r.Reply(err == nil, nil)
			case sshproto.ReqExec:
				r.Reply(true, nil)
				close(execed)
			default:
				r.Reply(false, nil)
			}
		}
	}()
	select {
	case <-execed:
	case <-time.After(5 * time.Second):
		return
	}
	var in io.Reader = ch
	var out io.Writer = ch
	var stream net.Conn
	if streams != nil {
		select {
		case stream = <-streams:
		case <-time.After(time.Second):
			return // as the agent gives up on a stream that never came
		}
		defer stream.Close()
		in, out = stream, stream
	}
	if a.breakStream != nil && stream != nil {
		a.breakStream(stream.(*net.TCPConn))
		ch.SendRequest(sshproto.ReqExitStatus, false, ssh.Marshal(sshproto.ExitStatus{Status: 0}))
		time.Sleep(5 * time.Second) // a frozen agent: the channel stays open
		return
	}
	b, _ := io.ReadAll(in)
	onChannel := b
	if stream != nil {
		onChannel, _ = io.ReadAll(ch)
	}
	a.mu.Lock()
	a.onChannel = append(a.onChannel, string(onChannel))
	a.mu.Unlock()
	out.Write(bytes.ToUpper(b))
	if stream != nil {
		stream.(*net.TCPConn).CloseWrite()
	}
	ch.CloseWrite()
	ch.SendRequest(sshproto.ReqExitStatus, false, ssh.Marshal(sshproto.ExitStatus{Status: 3}))
	if stream != nil {
		io.Copy(io.Discard, stream) // until the client closes it
	}
}

// streamingClient connects a client to a new streamingAgent whose gateway
// the client reaches with token.
func streamingClient(t *testing.T, token []byte) (*Client, *streamingAgent) {
	t.Helper()
	a := &streamingAgent{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go (&portfwd.Gateway{Token: []byte("the token"), Awaited: a.rv.Claim}).Serve(ctx, gl)
	c := fakeAgent(t, func(_ context.Context, nc ssh.NewChannel) {
		if ch, reqs, err := nc.Accept(); err == nil {
			go a.serveSession(ch, reqs)
		}
	})
	c.CarryStreamsThrough(&portfwd.StreamDialer{Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", gl.Addr().String())
	}})
	return c, a
}

func TestStreamCarriesBulkOutsideTheChannel(t *testing.T) {
	for _, tt := range []struct {
		name          string
		token         string
		bulk          bool
		wantAsks      int
		wantOnChannel bool // stdin arrived on the channel's data
	}{
		{"bulk operation", "the token", true, 1, false},
		{"small operation", "the token", false, 0, true},
		// The agent agreed, the gateway refused: the operation starts
		// over on a fresh channel with its streams on it.
		{"stream refused", "a wrong token", true, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, a := streamingClient(t, []byte(tt.token))
			var out, errb bytes.Buffer
			code, err := c.Stream(context.Background(), "shout", nil, IO{Stdin: strings.NewReader("some stdin"), Stdout: &out, Stderr: &errb, Bulk: tt.bulk})
			if err != nil || code != 3 || out.String() != "SOME STDIN" {
				t.Fatalf("Stream = %d, %v; stdout %q, stderr %q", code, err, out.String(), errb.String())
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.streamsAsks != tt.wantAsks {
				t.Errorf("asked for streams elsewhere %d times, want %d", a.streamsAsks, tt.wantAsks)
			}
			last := a.onChannel[len(a.onChannel)-1]
			if got := last == "some stdin"; got != tt.wantOnChannel {
				t.Errorf("stdin on the channel: %q", last)
			}
		})
	}
}

// TestStreamBrokenOrFrozen: a stream reset under stdout is an error, not
// the exit code's success; a stream that never ends after the exit status
// still lets the caller give up.
func TestStreamBrokenOrFrozen(t *testing.T) {
	t.Run("reset", func(t *testing.T) {
		c, a := streamingClient(t, []byte("the token"))
		a.breakStream = func(s *net.TCPConn) {
			s.Write([]byte("partial"))
			s.SetLinger(0) // close sends a reset
			s.Close()
		}
		_, err := c.Stream(context.Background(), "shout", nil, IO{Stdout: io.Discard, Bulk: true})
		if !errors.Is(err, ErrOutputCut) {
			t.Fatalf("Stream over a reset stream = %v, want ErrOutputCut", err)
		}
	})
	t.Run("frozen", func(t *testing.T) {
		c, a := streamingClient(t, []byte("the token"))
		a.breakStream = func(*net.TCPConn) {} // neither output nor its end
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		res := make(chan error, 1)
		go func() {
			_, err := c.Stream(ctx, "shout", nil, IO{Stdout: io.Discard, Bulk: true})
			res <- err
		}()
		select {
		case err := <-res:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Stream = %v, want the context's error", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Stream did not return after its context ended")
		}
	})
}

// failingWriter takes its first write, then fails as a full disk would.
type failingWriter struct{ writes int }

var errDiskFull = errors.New("no space left on device")

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > 1 {
		return 0, errDiskFull
	}
	return len(p), nil
}

// TestOutputWriterFails: when the caller's stdout fails, the operation is
// abandoned and its error is the writer's, on the channel and on a stream
// alike; it is not a broken connection.
func TestOutputWriterFails(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		c, _ := streamingClient(t, []byte("the token"))
		stdin := strings.Repeat("output that has nowhere to go\n", 1<<17) // 3.75 MiB, more than a channel's window
		res := make(chan error, 1)
		go func() {
			_, err := c.Stream(context.Background(), "shout", nil, IO{Stdin: strings.NewReader(stdin), Stdout: &failingWriter{}, Bulk: bulk})
			res <- err
		}()
		select {
		case err := <-res:
			if !errors.Is(err, errDiskFull) || errors.Is(err, ErrOutputCut) {
				t.Errorf("bulk %v: Stream = %v, want the writer's error", bulk, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("bulk %v: Stream did not return after its writer failed", bulk)
		}
	}
}
