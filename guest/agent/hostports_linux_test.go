package agent

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// tcpPair returns the two ends of a loopback TCP connection: streams reach
// the agent's gateway as TCP connections that can half-close.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// echoUnix serves a Unix socket that answers each connection with what it
// read, after the client's half-close, as a stand-in Docker API socket.
func echoUnix(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", path)
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
	return path
}

// TestHostPortsAwaited: the gateway's stream to api.DockerStream is joined
// to the Docker API socket, one to a name a session expects goes to that
// session, and any other is refused.
func TestHostPortsAwaited(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Run("docker", func(t *testing.T) {
		h := newHostPorts(log, echoUnix(t))
		take, ok := h.awaited(api.DockerStream)
		if !ok {
			t.Fatal("the Docker API stream was refused")
		}
		client, server := tcpPair(t)
		go take(server)
		client.Write([]byte("GET /_ping"))
		client.(*net.TCPConn).CloseWrite()
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(client); err != nil || string(b) != "GET /_ping" {
			t.Fatalf("through the Docker API socket: %q, %v", b, err)
		}
	})
	t.Run("docker socket gone", func(t *testing.T) {
		h := newHostPorts(log, filepath.Join(t.TempDir(), "none.sock"))
		take, ok := h.awaited(api.DockerStream)
		if !ok {
			t.Fatal("the Docker API stream was refused")
		}
		client, server := tcpPair(t)
		go take(server)
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("the stream stayed open without a Docker API socket: %v", err)
		}
	})
	t.Run("no Docker API", func(t *testing.T) {
		h := newHostPorts(log, "")
		if _, ok := h.awaited(api.DockerStream); ok {
			t.Fatal("a stream to the Docker API was taken where there is none")
		}
	})
	t.Run("session's stream", func(t *testing.T) {
		h := newHostPorts(log, echoUnix(t))
		streams, forget, err := h.streams.Expect("0123abcd")
		if err != nil {
			t.Fatal(err)
		}
		defer forget()
		if _, ok := h.awaited("other"); ok {
			t.Fatal("a stream nobody expects was taken")
		}
		take, ok := h.awaited("0123abcd")
		if !ok {
			t.Fatal("the stream a session expects was refused")
		}
		_, server := tcpPair(t)
		go take(server)
		select {
		case got := <-streams:
			if got != server {
				t.Fatal("the session got another connection")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the session never got its stream")
		}
	})
}
