package portfwd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// rig is a gateway on a loopback TCP port and a Forwarder that reaches it,
// as the host process reaches the agent's gateway through a VM.
type rig struct {
	fwd   *Forwarder
	token []byte
	gwURL string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	token, addr := startGateway(t, nil)
	r := &rig{token: token, gwURL: addr}
	r.fwd = NewForwarder(func(ctx context.Context, tg Target) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", r.gwURL)
		if err != nil {
			return nil, err
		}
		return DialThrough(ctx, c, token, tg)
	}, nil)
	t.Cleanup(func() { r.fwd.Close() })
	return r
}

// startGateway serves a gateway with a new token and the given Awaited on
// a loopback TCP port until the test ends.
func startGateway(t testing.TB, awaited func(name string) (take func(net.Conn), ok bool)) (token []byte, addr string) {
	t.Helper()
	token = make([]byte, 32)
	rand.Read(token)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw := &Gateway{Token: token, Awaited: awaited}
	served := make(chan struct{})
	go func() { gw.Serve(ctx, l); close(served) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	return token, l.Addr().String()
}

// echoServer answers every TCP connection with what it read, after the
// client's EOF: it needs the half-close to be carried.
func echoServer(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(b)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// roundTrip sends msg, half-closes and reads the answer to EOF.
func roundTrip(t testing.TB, addr string, msg []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestHeaderRoundTrip(t *testing.T) {
	tests := []Target{
		{Proto: "tcp", Addr: netip.MustParseAddrPort("172.17.0.2:80")},
		{Proto: "udp", Addr: netip.MustParseAddrPort("[fd00::2]:53")},
		{Proto: "tcp", Addr: netip.MustParseAddrPort("[::ffff:10.0.0.1]:65535")},
		{Proto: "stream", Name: "0123456789abcdef0123456789abcdef"},
	}
	for _, tg := range tests {
		var b bytes.Buffer
		if err := WriteHeader(&b, []byte("secret"), tg); err != nil {
			t.Fatal(err)
		}
		token, got, err := ReadHeader(&b)
		want := tg
		if tg.Proto != "stream" {
			want = Target{Proto: tg.Proto, Addr: netip.AddrPortFrom(tg.Addr.Addr().Unmap(), tg.Addr.Port())}
		}
		if err != nil || string(token) != "secret" || got != want {
			t.Errorf("%v: got %q %v %v", tg, token, got, err)
		}
	}
	for _, bad := range []Target{
		{Proto: "sctp", Addr: netip.MustParseAddrPort("1.2.3.4:5")},
		{Proto: "tcp"},
		{Proto: "stream"},
		{Proto: "stream", Name: strings.Repeat("n", maxName+1)},
	} {
		if err := WriteHeader(io.Discard, []byte("x"), bad); err == nil {
			t.Errorf("WriteHeader(%v) succeeded", bad)
		}
	}
	if err := WriteHeader(io.Discard, nil, tests[0]); err == nil {
		t.Error("WriteHeader with no token succeeded")
	}
}

func FuzzReadHeader(f *testing.F) {
	var b bytes.Buffer
	WriteHeader(&b, []byte("token"), Target{Proto: "tcp", Addr: netip.MustParseAddrPort("10.0.0.1:80")})
	f.Add(b.Bytes())
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 'x', 2, 16})
	b.Reset()
	WriteHeader(&b, []byte("token"), Target{Proto: "stream", Name: "abc"})
	f.Add(b.Bytes())
	f.Add([]byte{1, 1, 'x', 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		token, tg, err := ReadHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteHeader(&out, token, tg); err != nil {
			t.Fatalf("a header read back does not write: %v %v: %v", token, tg, err)
		}
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("re-encoded %x, read from %x", out.Bytes(), data)
		}
	})
}

func TestForwardTCPWithHalfClose(t *testing.T) {
	r := newRig(t)
	target := echoServer(t)
	got, err := r.fwd.Publish("c1", target.Addr(), []api.PortBinding{{ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].HostPort == 0 || got[0].HostIP != "" {
		t.Fatalf("Publish = %+v", got)
	}
	msg := bytes.Repeat([]byte("0123456789"), 100000)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", got[0].HostPort)}
	if l, err := net.Listen("tcp", "[::1]:0"); err == nil {
		l.Close()
		addrs = append(addrs, fmt.Sprintf("[::1]:%d", got[0].HostPort))
	}
	for _, a := range addrs {
		if echo := roundTrip(t, a, msg); !bytes.Equal(echo, msg) {
			t.Errorf("through %s: %d bytes back of %d", a, len(echo), len(msg))
		}
	}
	if pub := r.fwd.Published("c1"); len(pub) != 1 || pub[0] != got[0] {
		t.Errorf("Published = %+v", pub)
	}
	r.fwd.Unpublish("c1")
	if _, err := net.Dial("tcp", addrs[0]); err == nil {
		t.Error("the port still accepts after Unpublish")
	}
	if s := r.fwd.Stats(); s != (Stats{}) {
		t.Errorf("after Unpublish: %+v", s)
	}
}

func TestPublishErrors(t *testing.T) {
	r := newRig(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).AddrPort().Port()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).AddrPort().Port()
	free.Close()

	tests := []struct {
		name  string
		ports []api.PortBinding
		want  string
	}{
		{"taken", []api.PortBinding{{HostIP: "127.0.0.1", HostPort: takenPort, ContainerPort: 80, Proto: "tcp"}},
			fmt.Sprintf("Bind for 127.0.0.1:%d failed: port is already allocated", takenPort)},
		{"taken by loopback default", []api.PortBinding{{HostPort: takenPort, ContainerPort: 80, Proto: "tcp"}},
			fmt.Sprintf("Bind for 127.0.0.1:%d failed: port is already allocated", takenPort)},
		{"second of two taken", []api.PortBinding{
			{HostIP: "127.0.0.1", HostPort: freePort, ContainerPort: 81, Proto: "tcp"},
			{HostIP: "127.0.0.1", HostPort: takenPort, ContainerPort: 80, Proto: "tcp"}},
			"port is already allocated"},
		{"twice in one request", []api.PortBinding{
			{HostIP: "127.0.0.1", HostPort: freePort, ContainerPort: 81, Proto: "tcp"},
			{HostIP: "127.0.0.1", HostPort: freePort, ContainerPort: 82, Proto: "tcp"}},
			"port is already allocated"},
		{"not an address", []api.PortBinding{{HostIP: "localhost", HostPort: 1, ContainerPort: 80, Proto: "tcp"}},
			`invalid host IP "localhost"`},
		{"not this machine's address", []api.PortBinding{{HostIP: "192.0.2.1", ContainerPort: 80, Proto: "tcp"}},
			"Bind for 192.0.2.1:0 failed"},
		{"protocol", []api.PortBinding{{ContainerPort: 80, Proto: "sctp"}}, "protocol must be tcp or udp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.fwd.Publish("c", loopback, tt.ports)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Publish = %v, want one line with %q", err, tt.want)
			}
			// All or nothing: the free port was released.
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort))
			if err != nil {
				t.Fatalf("the free port stayed bound: %v", err)
			}
			l.Close()
			if s := r.fwd.Stats(); s != (Stats{}) {
				t.Errorf("after a failed Publish: %+v", s)
			}
		})
	}
}

func TestWrongTokenIsRefused(t *testing.T) {
	r := newRig(t)
	c, err := net.Dial("tcp", r.gwURL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = DialThrough(context.Background(), c, []byte("not the token"), Target{Proto: "tcp", Addr: echoServer(t)})
	if err == nil || !strings.Contains(err.Error(), "refused the token") {
		t.Fatalf("DialThrough with a wrong token: %v", err)
	}
	c, err = net.Dial("tcp", r.gwURL)
	if err != nil {
		t.Fatal(err)
	}
	dead := netip.AddrPortFrom(loopback, 1)
	if _, err := DialThrough(context.Background(), c, r.token, Target{Proto: "tcp", Addr: dead}); err == nil || !strings.Contains(err.Error(), "could not connect") {
		t.Fatalf("DialThrough to a closed port: %v", err)
	}
}

func TestForwardUDP(t *testing.T) {
	r := newRig(t)
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	target := srv.LocalAddr().(*net.UDPAddr).AddrPort()
	got, err := r.fwd.Publish("u", target.Addr(), []api.PortBinding{{ContainerPort: target.Port(), Proto: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []string{"a", "b"} {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", got[0].HostPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 100)
		for i := range 3 {
			msg := fmt.Sprintf("%s%d", client, i)
			// UDP may drop: resend until an answer comes.
			var n int
			for try := 0; ; try++ {
				c.Write([]byte(msg))
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, err = c.Read(buf); err == nil || try == 10 {
					break
				}
			}
			if err != nil || string(buf[:n]) != "echo "+msg {
				t.Fatalf("client %s got %q, %v", client, buf[:n], err)
			}
		}
	}
	if s := r.fwd.Stats(); s.Conns != 2 {
		t.Errorf("two clients: %+v flows", s)
	}
	r.fwd.Unpublish("u")
	if s := r.fwd.Stats(); s != (Stats{}) {
		t.Errorf("after Unpublish: %+v", s)
	}
}

func TestLocalDialer(t *testing.T) {
	token := []byte("0123456789abcdef")
	gw := &Gateway{Token: token}
	fwd := NewForwarder(LocalDialer(context.Background(), gw, token), nil)
	defer fwd.Close()
	target := echoServer(t)
	got, err := fwd.Publish("x", target.Addr(), []api.PortBinding{{HostIP: "127.0.0.1", ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	if echo := roundTrip(t, fmt.Sprintf("127.0.0.1:%d", got[0].HostPort), []byte("ping")); string(echo) != "ping" {
		t.Fatalf("got %q", echo)
	}
}

// TestManyShortConnectionsLeakNothing guards against a forwarder that
// keeps a goroutine or a descriptor per connection until it dies.
func TestManyShortConnectionsLeakNothing(t *testing.T) {
	r := newRig(t)
	target := echoServer(t)
	got, err := r.fwd.Publish("c", target.Addr(), []api.PortBinding{{HostIP: "127.0.0.1", ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", got[0].HostPort)
	roundTrip(t, addr, []byte("warm"))
	settle(t, r.fwd)
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	for i := range 1000 {
		if echo := roundTrip(t, addr, []byte{byte(i)}); len(echo) != 1 {
			t.Fatalf("connection %d: %q", i, echo)
		}
	}
	// Some closed connections are still being torn down: wait for the
	// forwarder to count none, then compare.
	settle(t, r.fwd)
	waitUntil(t, func() bool {
		// io.Copy between TCP connections splices through pipes the net
		// package pools; a collection empties the pool and closes them.
		runtime.GC()
		return runtime.NumGoroutine() <= goroutines && openFDs(t) <= fds
	},
		func() string {
			return fmt.Sprintf("goroutines %d -> %d, fds %d -> %d", goroutines, runtime.NumGoroutine(), fds, openFDs(t))
		})
}

func settle(t *testing.T, f *Forwarder) {
	t.Helper()
	waitUntil(t, func() bool { return f.Stats().Conns == 0 }, func() string { return fmt.Sprintf("%+v", f.Stats()) })
}

// waitUntil polls cond: teardown is asynchronous, but it must finish.
func waitUntil(t *testing.T, cond func() bool, state func() string) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never settled: %s", state())
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

func TestUnpublishEndsOpenConnections(t *testing.T) {
	r := newRig(t)
	target := echoServer(t)
	got, err := r.fwd.Publish("c", target.Addr(), []api.PortBinding{{HostIP: "127.0.0.1", ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", got[0].HostPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("open"))
	waitUntil(t, func() bool { return r.fwd.Stats().Conns == 1 }, func() string { return fmt.Sprintf("%+v", r.fwd.Stats()) })
	r.fwd.Unpublish("c")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read after Unpublish: %v", err)
	}
}

func BenchmarkThroughput(b *testing.B) {
	r := newRig(b)
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	target := sink.Addr().(*net.TCPAddr).AddrPort()
	got, err := r.fwd.Publish("b", target.Addr(), []api.PortBinding{{HostIP: "127.0.0.1", ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for _, tc := range []struct{ name, addr string }{
		{"direct", target.String()},
		{"forwarded", fmt.Sprintf("127.0.0.1:%d", got[0].HostPort)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkConnect(b *testing.B) {
	r := newRig(b)
	target := echoServer(b)
	got, err := r.fwd.Publish("b", target.Addr(), []api.PortBinding{{HostIP: "127.0.0.1", ContainerPort: target.Port(), Proto: "tcp"}})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, addr string }{
		{"direct", target.String()},
		{"forwarded", fmt.Sprintf("127.0.0.1:%d", got[0].HostPort)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				roundTrip(b, tc.addr, []byte("x"))
			}
		})
	}
}
