package hostproc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// streamLocalAgent serves channels as the agent does: a ChanStreamLocal
// for api.DockerSocket is joined to the Unix socket at guestSocket (the
// test's stand-in for the guest's Docker API), any other is refused.
// opened counts the channels joined.
func streamLocalAgent(guestSocket string, opened *atomic.Int32) func(<-chan ssh.NewChannel, <-chan *ssh.Request) {
	return func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			var m sshproto.StreamLocal
			if nc.ChannelType() != sshproto.ChanStreamLocal || ssh.Unmarshal(nc.ExtraData(), &m) != nil || m.SocketPath != api.DockerSocket {
				nc.Reject(ssh.Prohibited, "not served")
				continue
			}
			go func() {
				c, err := net.Dial("unix", guestSocket)
				if err != nil {
					nc.Reject(ssh.ConnectionFailed, err.Error())
					return
				}
				ch, reqs, err := nc.Accept()
				if err != nil {
					c.Close()
					return
				}
				opened.Add(1)
				go ssh.DiscardRequests(reqs)
				portfwd.Join(ch, c)
			}()
		}
	}
}

// dockerRelay runs ServeDocker on a Unix socket in front of an agent
// whose Docker API is served by serveGuest, and returns that socket and
// the count of connections the agent joined to it. admit and use are the
// relay's Admit and Use. With viaGateway the relay has a Gateway: the agent's forwarding
// gateway, which joins streams to api.DockerStream; without it, only SSH
// channels reach the guest's socket.
func dockerRelay(t *testing.T, serveGuest func(net.Listener), admit func() error, use func(context.Context) (func(), error), viaGateway bool) (string, *atomic.Int32) {
	t.Helper()
	dir := t.TempDir()
	guest, err := net.Listen("unix", filepath.Join(dir, "guest-docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	go serveGuest(guest)
	// opened counts the joins of the way under test only: a relay that
	// took the other way is caught.
	opened, overSSH := new(atomic.Int32), new(atomic.Int32)
	if !viaGateway {
		overSSH = opened
	}
	conn, inst := agentConn(t, streamLocalAgent(guest.Addr().String(), overSSH))
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	r := NewRelay(keys.Host, keys.ClientPublic, conn)
	r.Admit, r.Use = admit, use
	l, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if viaGateway {
		gl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		token := []byte("gateway token")
		joinDocker := func(c net.Conn) {
			g, err := net.Dial("unix", guest.Addr().String())
			if err != nil {
				c.Close()
				return
			}
			opened.Add(1)
			portfwd.Join(c, g)
		}
		gw := &portfwd.Gateway{Token: token, Awaited: func(name string) (func(net.Conn), bool) {
			return joinDocker, name == api.DockerStream
		}}
		go gw.Serve(ctx, gl)
		r.Gateway = &portfwd.StreamDialer{Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", gl.Addr().String())
		}}
	}
	go r.ServeDocker(ctx, l)
	return l.Addr().String(), opened
}

// replyAfterEOF reads each connection to its end, then answers with what
// it read and closes: only a half-close carried both ways gets an answer.
func replyAfterEOF(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b, err := io.ReadAll(c)
			if err != nil {
				return
			}
			c.Write(append([]byte("got "), b...))
		}()
	}
}

// echoLines answers each line at once, as an upgraded (attach) connection
// does, until the client's EOF.
func echoLines(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s := bufio.NewScanner(c)
			for s.Scan() {
				if _, err := c.Write([]byte("echo " + s.Text() + "\n")); err != nil {
					return
				}
			}
		}()
	}
}

func pingAPI(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.47")
		io.WriteString(w, "OK")
	})
	http.Serve(l, mux)
}

func TestServeDocker(t *testing.T) {
	refuse := func() error { return errors.New("the guest agent has not answered") }
	for _, tc := range []struct {
		name  string
		guest func(net.Listener)
		admit func() error
		check func(t *testing.T, sock string)
		// channels is how many the agent must have joined.
		channels int32
	}{
		{name: "HTTP, kept alive", guest: pingAPI, channels: 1, check: func(t *testing.T, sock string) {
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}}
			defer client.CloseIdleConnections()
			for range 3 {
				resp, err := client.Get("http://docker/_ping")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "OK" || resp.Header.Get("Api-Version") != "1.47" {
					t.Fatalf("ping: %s %q %v", resp.Status, b, resp.Header)
				}
			}
		}},
		{name: "half-close both ways", guest: replyAfterEOF, channels: 1, check: func(t *testing.T, sock string) {
			c := dial(t, sock)
			c.Write([]byte("request"))
			if err := c.(*net.UnixConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, c); got != "got request" {
				t.Fatalf("answer %q, want %q", got, "got request")
			}
		}},
		{name: "interactive, as upgraded", guest: echoLines, channels: 1, check: func(t *testing.T, sock string) {
			c := dial(t, sock)
			r := bufio.NewReader(c)
			for _, line := range []string{"a", "bb", "ccc"} {
				c.Write([]byte(line + "\n"))
				got, err := r.ReadString('\n')
				if err != nil || got != "echo "+line+"\n" {
					t.Fatalf("answer %q, %v", got, err)
				}
			}
			c.(*net.UnixConn).CloseWrite()
			if rest := readAll(t, r); rest != "" {
				t.Fatalf("after EOF: %q", rest)
			}
		}},
		{name: "silent agent", guest: pingAPI, admit: refuse, channels: 0, check: func(t *testing.T, sock string) {
			c := dial(t, sock)
			if got := readAll(t, c); got != "" {
				t.Fatalf("a refused connection read %q", got)
			}
		}},
	} {
		for _, via := range []string{"ssh", "gateway"} {
			t.Run(tc.name+" via "+via, func(t *testing.T) {
				sock, opened := dockerRelay(t, tc.guest, tc.admit, nil, via == "gateway")
				tc.check(t, sock)
				if n := opened.Load(); n != tc.channels {
					t.Errorf("the agent joined %d connections, want %d", n, tc.channels)
				}
			})
		}
	}
}

// TestServeDockerIsAUse: each Docker connection is a use of the guest
// (which resumes a guest paused while idle) from before it reaches the
// agent until it ends; a guest that cannot be resumed ends the connection
// unrelayed.
func TestServeDockerIsAUse(t *testing.T) {
	for _, via := range []string{"ssh", "gateway"} {
		t.Run(via, func(t *testing.T) {
			var begun, ended atomic.Int32
			use := func(context.Context) (func(), error) {
				begun.Add(1)
				return func() { ended.Add(1) }, nil
			}
			sock, opened := dockerRelay(t, echoLines, nil, use, via == "gateway")
			c := dial(t, sock)
			r := bufio.NewReader(c)
			c.Write([]byte("a\n"))
			if got, err := r.ReadString('\n'); err != nil || got != "echo a\n" {
				t.Fatalf("answer %q, %v", got, err)
			}
			if begun.Load() != 1 || ended.Load() != 0 {
				t.Fatalf("during the connection: %d uses begun, %d ended; want 1 and 0", begun.Load(), ended.Load())
			}
			c.(*net.UnixConn).CloseWrite()
			readAll(t, r)
			waitFor(t, "the use ended with the connection", func() bool { return ended.Load() == 1 })
			if opened.Load() != 1 {
				t.Fatalf("the agent joined %d connections, want 1", opened.Load())
			}

			cannot := func(context.Context) (func(), error) { return nil, errors.New("resume: qmp: gone") }
			sock, opened = dockerRelay(t, echoLines, nil, cannot, via == "gateway")
			if got := readAll(t, dial(t, sock)); got != "" || opened.Load() != 0 {
				t.Fatalf("with a guest that cannot be resumed: read %q, %d joined", got, opened.Load())
			}
		})
	}
}

// TestServeDockerRefusedChannel: an agent that does not serve the socket
// (an older guest) ends the client's connection rather than leaving it
// hanging.
func TestServeDockerRefusedChannel(t *testing.T) {
	dir := t.TempDir()
	conn, inst := agentConn(t, func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go ssh.DiscardRequests(reqs)
		rejectChannels(chans)
	})
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go NewRelay(keys.Host, keys.ClientPublic, conn).ServeDocker(ctx, l)
	c := dial(t, l.Addr().String())
	c.Write([]byte("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"))
	if got := readAll(t, c); got != "" {
		t.Fatalf("a connection the agent refused read %q", got)
	}
}

func dial(t *testing.T, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readAll reads r to its end, which must come before the test's
// deadline: a relay that leaves a connection hanging fails.
func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !endedByPeer(err) {
		t.Fatalf("read: %v (after %q)", err, b)
	}
	return string(b)
}

// endedByPeer reports a connection the far side ended abruptly (a reset,
// when it closed with data unread), which is an end too; a deadline is not.
func endedByPeer(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
