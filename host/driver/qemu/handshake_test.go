package qemu

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// fakeGuest plays the agent's side of the handshake on a pipe.
type fakeGuest func(t *testing.T, c net.Conn)

// answer reads one hello and then writes out in the given pieces.
func answer(pieces ...string) fakeGuest {
	return func(t *testing.T, c net.Conn) {
		if !readHello(c) {
			return
		}
		// Keep reading: a pipe, unlike a socket, has no buffer for a
		// resent hello.
		go io.Copy(io.Discard, c)
		for _, p := range pieces {
			if _, err := io.WriteString(c, p); err != nil {
				return
			}
		}
	}
}

func readHello(c net.Conn) bool {
	b := make([]byte, len(api.SerialHello))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != api.SerialHello {
		return false
	}
	return true
}

func TestHandshake(t *testing.T) {
	junk := strings.Repeat("stale SSH packet bytes \x00\xff", 5000) // 125 kB, no newline at its end
	tests := []struct {
		name  string
		guest fakeGuest
		after string // what the returned conn must yield first
	}{
		{"ready alone", answer(api.SerialReady, "SSH-2.0-x\n"), "SSH-2.0-x\n"},
		{"banner in the same write", answer(api.SerialReady + "SSH-2.0-x\n"), "SSH-2.0-x\n"},
		{"junk without newline before ready", answer("garbage" + api.SerialReady + "after"), "after"},
		{"large junk", answer(junk, api.SerialReady+"after"), "after"},
		{"split byte by byte", answer(append(strings.Split("xx"+api.SerialReady, ""), "after")...), "after"},
		{"duplicate ready is data", answer(api.SerialReady + api.SerialReady), api.SerialReady},
		{"guest misses the first hello", func(t *testing.T, c net.Conn) {
			// Consume the first hello as a stale session would, stay silent,
			// then answer the resent one.
			if !readHello(c) || !readHello(c) {
				return
			}
			go io.Copy(io.Discard, c)
			io.WriteString(c, api.SerialReady+"after")
		}, "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer host.Close()
			defer guest.Close()
			go tt.guest(t, guest)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := handshakeRetry(ctx, host, 20*time.Millisecond, 50*time.Millisecond)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			got := make([]byte, len(tt.after))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != tt.after {
				t.Fatalf("after handshake read %q, %v; want %q", got, err, tt.after)
			}
		})
	}
}

func TestHandshakeWritesThroughAfterReady(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	defer guest.Close()
	got := make(chan string, 1)
	go func() {
		if !readHello(guest) {
			got <- "no hello"
			return
		}
		io.WriteString(guest, api.SerialReady)
		b := make([]byte, 5)
		io.ReadFull(guest, b)
		got <- string(b)
	}()
	c, err := handshakeRetry(context.Background(), host, time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("guest read %q after the handshake, want hello", s)
	}
}

func TestHandshakeFails(t *testing.T) {
	tests := []struct {
		name    string
		guest   fakeGuest
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
		wantMsg string
	}{
		{
			name:  "closed before ready",
			guest: func(t *testing.T, c net.Conn) { readHello(c); io.WriteString(c, "partial vmbox-rea"); c.Close() },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Minute)
			},
			wantMsg: "closed before the agent was ready",
		},
		{
			name:  "guest never answers",
			guest: func(t *testing.T, c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
		{
			name:  "cancelled",
			guest: func(t *testing.T, c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name:  "cancelled while nothing is read and no deadline",
			guest: func(t *testing.T, c net.Conn) { readHello(c) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, guest := net.Pipe()
			defer host.Close()
			defer guest.Close()
			go tt.guest(t, guest)
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := handshakeRetry(ctx, host, time.Hour, time.Hour)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("handshake = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("handshake = %v, want %q", err, tt.wantMsg)
			}
		})
	}
}

// TestHandshakeResendsHello checks the resend schedule's effect: a guest
// that only counts hellos sees more than one while it stays silent.
func TestHandshakeResendsHello(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	defer guest.Close()
	go func() {
		for i := 0; i < 3; i++ {
			if !readHello(guest) {
				return
			}
		}
		// Keep reading: a pipe, unlike a socket, has no buffer for the
		// hellos that may still come.
		go io.Copy(io.Discard, guest)
		io.WriteString(guest, api.SerialReady)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := handshakeRetry(ctx, host, time.Millisecond, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if pc := c.(*prefixConn); len(pc.pending) != 0 {
		t.Fatalf("pending %q", pc.pending)
	}
}

// TestHandshakeResendLimit checks that a silent guest receives at most
// 1+helloResends hellos, so that queued hellos stay within what an SSH
// server skips before the version exchange.
func TestHandshakeResendLimit(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	counted := make(chan int, 1)
	go func() {
		n := 0
		for readHello(guest) {
			n++
		}
		counted <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := handshakeRetry(ctx, host, time.Millisecond, 2*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handshake = %v, want DeadlineExceeded", err)
	}
	host.Close()
	if n := <-counted; n != 1+helloResends {
		t.Fatalf("guest got %d hellos, want %d", n, 1+helloResends)
	}
	if (1+helloResends)*len(api.SerialHello) > 200 {
		t.Fatalf("%d hellos are too many bytes for an SSH peer to skip", 1+helloResends)
	}
}
