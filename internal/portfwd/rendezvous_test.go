package portfwd

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// streamRig is a gateway on a loopback TCP port whose stream targets are
// the ones its Rendezvous expects, and a StreamDialer that reaches it.
type streamRig struct {
	rv     Rendezvous
	dialer *StreamDialer
}

func newStreamRig(t *testing.T) *streamRig {
	t.Helper()
	r := &streamRig{}
	token, addr := startGateway(t, r.rv.Claim)
	r.dialer = &StreamDialer{Token: token, Dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}}
	return r
}

// TestStreamHandedOver: a stream to an expected name reaches the side that
// expects it, both ways and with half-closes; a name is good once.
func TestStreamHandedOver(t *testing.T) {
	r := newStreamRig(t)
	streams, forget, err := r.rv.Expect("s1")
	if err != nil {
		t.Fatal(err)
	}
	defer forget()
	client, err := r.dialer.DialStream(context.Background(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var far net.Conn
	select {
	case far = <-streams:
	case <-time.After(5 * time.Second):
		t.Fatal("the expected stream never arrived")
	}
	defer far.Close()
	// The far side echoes what it reads until the client's EOF, then ends
	// its own direction.
	go func() {
		io.Copy(far, far)
		far.(*net.TCPConn).CloseWrite()
	}()
	io.WriteString(client, "stdin bytes")
	client.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "stdin bytes" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if _, err := r.dialer.DialStream(context.Background(), "s1"); err == nil || !strings.Contains(err.Error(), "nothing awaits") {
		t.Fatalf("a second stream to the same name: %v", err)
	}
}

func TestStreamRefused(t *testing.T) {
	r := newStreamRig(t)
	_, forget, err := r.rv.Expect("gone")
	if err != nil {
		t.Fatal(err)
	}
	forget()
	for _, tt := range []struct {
		name, target string
		token        []byte
		want         string
	}{
		{"never expected", "other", r.dialer.Token, "nothing awaits"},
		{"forgotten", "gone", r.dialer.Token, "nothing awaits"},
		{"wrong token", "gone", []byte("not the token"), "refused the token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &StreamDialer{Dial: r.dialer.Dial, Token: tt.token}
			if _, err := d.DialStream(context.Background(), tt.target); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DialStream = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestRendezvousForgetClosesLateStream: a stream delivered after its
// expectation was given up is closed, not leaked.
func TestRendezvousForgetClosesLateStream(t *testing.T) {
	var rv Rendezvous
	_, forget, err := rv.Expect("late")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rv.Expect("late"); err == nil {
		t.Fatal("a name was expected twice")
	}
	take, ok := rv.Claim("late")
	if !ok {
		t.Fatal("Claim found nothing")
	}
	if _, ok := rv.Claim("late"); ok {
		t.Fatal("a name was claimed twice")
	}
	forget()
	a, b := net.Pipe()
	defer b.Close()
	take(a)
	if _, err := a.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("the late stream is still open: write = %v", err)
	}
	for _, bad := range []string{"", strings.Repeat("n", maxName+1)} {
		if _, _, err := rv.Expect(bad); err == nil {
			t.Errorf("Expect(%q) succeeded", bad)
		}
	}
}

// TestRendezvousForgetClosesUnreceived: a stream delivered but never
// received is closed when its expectation is forgotten.
func TestRendezvousForgetClosesUnreceived(t *testing.T) {
	var rv Rendezvous
	_, forget, err := rv.Expect("s")
	if err != nil {
		t.Fatal(err)
	}
	take, _ := rv.Claim("s")
	a, b := net.Pipe()
	defer b.Close()
	take(a)
	forget()
	if _, err := a.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("the unreceived stream is still open: write = %v", err)
	}
}

func TestStreamDialerWantsHalfClose(t *testing.T) {
	d := &StreamDialer{Token: []byte("t"), Dial: func(context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}}
	if _, err := d.Connect(context.Background()); err == nil || !strings.Contains(err.Error(), "half-close") {
		t.Fatalf("Connect over a net.Pipe = %v", err)
	}
}
