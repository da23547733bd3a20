// Package sshclient is the host's side of the agent protocol (see
// guest/api): it authenticates with the instance's key, verifies the agent's
// known host key, and runs operations as SSH session channels with their
// streams, terminal, signals and exit codes.
package sshclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/internal/signals"
)

// Client is one SSH connection to an agent (directly, or through the
// instance's host process, which relays channels).
type Client struct {
	conn *ssh.Client
}

// Config returns the SSH client configuration for an instance's keys.
func Config(keys *instance.Keys) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            api.SSHUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.Client)},
		HostKeyCallback: ssh.FixedHostKey(keys.HostPublic),
		// The agent presents exactly one key type; asking for it spares
		// a negotiation round on slow (emulated) guests.
		HostKeyAlgorithms: []string{keys.HostPublic.Type()},
	}
}

// New runs the SSH handshake on c.
func New(c net.Conn, keys *instance.Keys) (*Client, error) {
	sc, chans, reqs, err := ssh.NewClientConn(c, "vmbox", Config(keys))
	if err != nil {
		return nil, fmt.Errorf("ssh handshake with agent: %w", err)
	}
	return &Client{conn: ssh.NewClient(sc, chans, reqs)}, nil
}

// Dial connects to an agent (or host process) listening on a Unix socket.
func Dial(ctx context.Context, socket string, keys *instance.Keys) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cl, err := New(c, keys)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return cl, nil
}

// SSH returns the underlying connection, for relays.
func (c *Client) SSH() *ssh.Client { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Wait blocks until the connection ends.
func (c *Client) Wait() error { return c.conn.Wait() }

// RemoteError is an operation that ended with a non-zero exit code and a
// message on stderr.
type RemoteError struct {
	Code    int
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("agent operation failed with exit code %d", e.Code)
	}
	return e.Message
}

// Call runs an operation that answers with one JSON document. reply may be nil.
func (c *Client) Call(ctx context.Context, op string, args, reply any) error {
	var out, errb bytes.Buffer
	code, err := c.Stream(ctx, op, args, IO{Stdout: &out, Stderr: &errb})
	if err != nil {
		return err
	}
	if code != 0 {
		return &RemoteError{Code: code, Message: strings.TrimSpace(errb.String())}
	}
	if reply != nil {
		if err := json.Unmarshal(out.Bytes(), reply); err != nil {
			return fmt.Errorf("decode %s reply: %w", op, err)
		}
	}
	return nil
}

// WindowSize is a terminal size in character cells.
type WindowSize struct{ Rows, Cols uint32 }

// TTY asks for a terminal on the remote side.
type TTY struct {
	Term   string
	Size   WindowSize
	Resize <-chan WindowSize
}

// IO are an operation's streams. Nil streams are empty (stdin) or discarded.
type IO struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	TTY     *TTY
	Signals <-chan string // SSH signal names ("INT", "TERM") to deliver to the remote process
}

type execMsg struct{ Command string }
type exitStatusMsg struct{ Status uint32 }
type exitSignalMsg struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}
type ptyReqMsg struct {
	Term     string
	Cols     uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}
type windowChangeMsg struct{ Cols, Rows, Width, Height uint32 }
type signalMsg struct{ Signal string }

// ErrConnectionLost means the channel closed without an exit status.
var ErrConnectionLost = errors.New("connection to the agent was lost before the operation finished")

// Stream runs an operation with its streams attached and returns its exit
// code. Cancelling ctx closes the channel, which the agent treats as the
// client going away.
func (c *Client) Stream(ctx context.Context, op string, args any, st IO) (int, error) {
	req, err := api.NewRequest(op, args)
	if err != nil {
		return 0, err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("encode request: %w", err)
	}
	ch, reqs, err := c.conn.OpenChannel("session", nil)
	if err != nil {
		return 0, fmt.Errorf("open channel to agent: %w", err)
	}
	defer ch.Close()
	if st.TTY != nil {
		m := ptyReqMsg{Term: st.TTY.Term, Cols: st.TTY.Size.Cols, Rows: st.TTY.Size.Rows, Modelist: "\x00"}
		if ok, err := ch.SendRequest("pty-req", true, ssh.Marshal(m)); err != nil || !ok {
			return 0, fmt.Errorf("agent refused a terminal: %v", err)
		}
	}
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(execMsg{Command: string(payload)})); err != nil || !ok {
		if err == nil {
			err = errors.New("request refused")
		}
		return 0, fmt.Errorf("agent refused operation %q: %w", op, err)
	}

	var copies sync.WaitGroup
	copyOut := func(w io.Writer, r io.Reader) {
		defer copies.Done()
		if w == nil {
			w = io.Discard
		}
		io.Copy(w, r)
	}
	copies.Add(2)
	go copyOut(st.Stdout, ch)
	go copyOut(st.Stderr, ch.Stderr())
	if st.Stdin != nil {
		go func() {
			io.Copy(ch, st.Stdin)
			ch.CloseWrite()
		}()
	} else {
		ch.CloseWrite()
	}
	done := make(chan struct{})
	defer close(done)
	var resize <-chan WindowSize
	if st.TTY != nil {
		resize = st.TTY.Resize
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				ch.Close()
				return
			case sz, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				ch.SendRequest("window-change", false, ssh.Marshal(windowChangeMsg{Cols: sz.Cols, Rows: sz.Rows}))
			case sig, ok := <-st.Signals:
				if !ok {
					st.Signals = nil
					continue
				}
				ch.SendRequest("signal", false, ssh.Marshal(signalMsg{Signal: sig}))
			}
		}
	}()

	code := -1
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			var m exitStatusMsg
			if ssh.Unmarshal(r.Payload, &m) == nil {
				code = int(m.Status)
			}
		case "exit-signal":
			var m exitSignalMsg
			if ssh.Unmarshal(r.Payload, &m) == nil {
				n, _ := signals.Parse(m.Signal) // an unknown signal adds nothing
				code = api.ExitSignalBase + n
			}
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	copies.Wait()
	if code < 0 {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, ErrConnectionLost
	}
	return code, nil
}
