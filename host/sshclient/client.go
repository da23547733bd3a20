// Package sshclient is the host's side of the agent protocol (see
// guest/api): it authenticates with the instance's key, verifies the agent's
// known host key, and runs operations as SSH session channels with their
// streams, terminal, signals and exit codes.
package sshclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/internal/portfwd"
	"github.com/vmbox/vmbox/internal/signals"
)

// Client is one SSH connection to an agent (directly, or through the
// instance's host process, which relays channels).
type Client struct {
	conn *ssh.Client
	// firstAnswer is FirstAnswerLimit, or 0 for a connection that must
	// outlive a silent guest (the host process's own).
	firstAnswer time.Duration
	// streams, when set, opens plain streams to the agent's forwarding
	// gateway for bulk operations' stdin and stdout.
	streams *portfwd.StreamDialer
}

// CarryStreamsThrough makes bulk operations (IO.Bulk) carry their stdin
// and stdout on plain streams that d opens to the agent's forwarding
// gateway (sshproto.ReqStreamsElsewhere) rather than inside the SSH
// connection. Under an emulated CPU the guest's SSH decryption, not the
// network, limits how fast bytes go in.
func (c *Client) CarryStreamsThrough(d *portfwd.StreamDialer) { c.streams = d }

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
	return NewServing(c, keys, nil, nil)
}

// EmulatedCPUCiphers is the cipher preference for an agent whose CPU is
// emulated (QEMU's TCG). ChaCha20-Poly1305 is plain integer arithmetic,
// which TCG translates into host instructions, while every AES-NI and
// PCLMULQDQ instruction of AES-GCM is a call into an emulation helper:
// measured in a TCG guest, 107 MB/s against 21 MB/s, which made the
// guest's decryption the limit of everything sent into the VM. With
// hardware virtualization AES-GCM is the faster, and the library's
// default order, which prefers it, stays.
func EmulatedCPUCiphers() []string {
	return []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM}
}

// GlobalRequestHandler answers a global request the agent sends.
type GlobalRequestHandler func(req *ssh.Request) (ok bool, payload []byte)

// NewServing runs the SSH handshake on c, preferring ciphers in their
// order (nil: the library's), and answers the agent's global requests
// with serve (nil refuses them all), one at a time, in order.
func NewServing(c net.Conn, keys *instance.Keys, ciphers []string, serve GlobalRequestHandler) (*Client, error) {
	cfg := Config(keys)
	cfg.Ciphers = ciphers
	sc, chans, reqs, err := ssh.NewClientConn(c, "vmbox", cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh handshake with agent: %w", err)
	}
	if serve != nil {
		go func(incoming <-chan *ssh.Request) {
			for req := range incoming {
				ok, payload := serve(req)
				if req.WantReply {
					req.Reply(ok, payload)
				}
			}
		}(reqs)
		reqs = nil // ours, not the Client's to discard
	}
	return &Client{conn: ssh.NewClient(sc, chans, reqs), firstAnswer: FirstAnswerLimit}, nil
}

// KeepThroughSilence removes the first-answer deadline: a silent guest
// then blocks an operation instead of closing the connection. The host
// process's own connection to the agent must survive a paused VM.
func (c *Client) KeepThroughSilence() { c.firstAnswer = 0 }

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

// Request sends a global request (sshproto.Req*) with payload, which
// ssh.Marshal encodes, and waits for a positive reply until ctx ends.
func (c *Client) Request(ctx context.Context, name string, payload any) error {
	ok, _, err := sshproto.SendRequest(ctx, c.conn, name, ssh.Marshal(payload))
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		c.conn.Close()
		return fmt.Errorf("%s: %w", name, err)
	case err == nil && !ok:
		return fmt.Errorf("%s refused", name)
	}
	return err
}

// SSH returns the underlying connection, for relays.
func (c *Client) SSH() *ssh.Client { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Wait blocks until the connection ends.
func (c *Client) Wait() error { return c.conn.Wait() }

// streamsElsewhere asks the agent to carry ch's stdin and stdout on a
// stream through the gateway and opens it. It returns no stream when the
// channel should keep them, and fallBack when the agent agreed but the
// stream failed (the agent then waits for it in vain).
func (c *Client) streamsElsewhere(ctx context.Context, ch ssh.Channel) (stream portfwd.HalfConn, fallBack bool) {
	conn, err := c.streams.Connect(ctx)
	if err != nil {
		return nil, false
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	name := hex.EncodeToString(nonce[:])
	ok, err := ch.SendRequest(sshproto.ReqStreamsElsewhere, true, ssh.Marshal(sshproto.StreamsElsewhere{Name: name}))
	if err != nil || !ok {
		conn.Close()
		return nil, false
	}
	stream, err = c.streams.Open(ctx, conn, name)
	if err != nil {
		return nil, true
	}
	return stream, false
}

// readErrors remembers the error its reader returned, other than io.EOF,
// so that a copy's failure can be told apart from its writer's.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

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

// TTY asks for a terminal on the remote side.
type TTY struct {
	Term   string
	Size   api.TermSize
	Resize <-chan api.TermSize
}

// IO are an operation's streams. Nil streams are empty (stdin) or discarded.
type IO struct {
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	TTY     *TTY
	Signals <-chan string // SSH signal names ("INT", "TERM") to deliver to the remote process
	// Bulk says the operation may move much data (or wants its bytes soon,
	// a terminal's): stdin and stdout then go outside the SSH connection
	// when the client can (CarryStreamsThrough). It costs two round
	// trips, so small answers do without.
	Bulk bool
}

// ErrConnectionLost means the channel closed without an exit status.
var ErrConnectionLost = errors.New("connection to the agent was lost before the operation finished")

// ErrOutputCut means the stream carrying an operation's stdout broke
// before its end: what was written may be incomplete, whatever the exit
// code.
var ErrOutputCut = errors.New("the connection carrying the operation's output broke; the output may be incomplete")

// ErrSignalNotTaken means the agent did not acknowledge a forwarded signal
// within SignalLimit; the remote process may still be running.
var ErrSignalNotTaken = errors.New("the guest did not take a forwarded signal in time; the container may still be running")

// FirstAnswerLimit bounds the wait for the agent to accept an operation:
// opening its channel and the reply to its "exec" request. It does not
// bound the operation itself.
const FirstAnswerLimit = sshproto.SilenceLimit

// SignalLimit bounds the wait for the agent to acknowledge a signal.
const SignalLimit = 5 * time.Second

// NoAnswerError is an operation the agent did not accept within
// FirstAnswerLimit: the guest is hung or overwhelmed.
type NoAnswerError struct {
	Op    string
	Limit time.Duration
}

func (e *NoAnswerError) Error() string {
	return fmt.Sprintf("the guest agent did not answer %s within %s; the VM may be hung (see vmbox status, vmbox logs; vmbox stop stops it)", e.Op, e.Limit)
}

// UnavailableError is the host process refusing an operation because the
// agent has gone silent.
type UnavailableError struct{ Message string }

func (e *UnavailableError) Error() string { return e.Message }

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
	// The first answer has a deadline: a silent guest must not hold the
	// caller forever. Closing the connection is the only way to unblock
	// OpenChannel and SendRequest.
	var silent atomic.Bool
	limit := c.firstAnswer
	if limit == 0 {
		limit = time.Duration(1<<63 - 1)
	}
	deadline := time.AfterFunc(limit, func() {
		silent.Store(true)
		c.conn.Close()
	})
	noAnswer := func(err error) error {
		if silent.Load() {
			return &NoAnswerError{Op: op, Limit: FirstAnswerLimit}
		}
		return err
	}
	ch, reqs, err := c.conn.OpenChannel("session", nil)
	if err != nil {
		deadline.Stop()
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) && oce.Reason == ssh.ResourceShortage {
			return 0, &UnavailableError{Message: oce.Message}
		}
		return 0, noAnswer(fmt.Errorf("open channel to agent: %w", err))
	}
	defer ch.Close()
	if st.TTY != nil {
		m := sshproto.PTYRequest{Term: st.TTY.Term, Cols: uint32(st.TTY.Size.Cols), Rows: uint32(st.TTY.Size.Rows), Modelist: "\x00"}
		if ok, err := ch.SendRequest(sshproto.ReqPTY, true, ssh.Marshal(m)); err != nil || !ok {
			deadline.Stop()
			return 0, noAnswer(fmt.Errorf("agent refused a terminal: %v", err))
		}
	}
	var stream portfwd.HalfConn
	if st.Bulk && c.streams != nil {
		var fallBack bool
		if stream, fallBack = c.streamsElsewhere(ctx, ch); fallBack {
			// The agent awaits a stream that will not come: start over
			// on a fresh channel, with the streams on it, unless the
			// caller gave up or the agent stopped answering meanwhile.
			ch.Close()
			if !deadline.Stop() {
				return 0, &NoAnswerError{Op: op, Limit: FirstAnswerLimit}
			}
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			st.Bulk = false
			return c.Stream(ctx, op, args, st)
		}
		if stream != nil {
			defer stream.Close()
		}
	}
	ok, err := ch.SendRequest(sshproto.ReqExec, true, ssh.Marshal(sshproto.Exec{Command: string(payload)}))
	if !deadline.Stop() || (err != nil && silent.Load()) {
		return 0, &NoAnswerError{Op: op, Limit: FirstAnswerLimit}
	}
	if err != nil || !ok {
		if err == nil {
			err = errors.New("request refused")
		}
		return 0, fmt.Errorf("agent refused operation %q: %w", op, err)
	}

	var copies sync.WaitGroup
	var streamBroken atomic.Bool
	var outputErr error
	var outputErrOnce sync.Once
	// abandon ends the operation at once: the agent takes the channel's
	// close as the client going away.
	abandon := func() {
		ch.Close()
		if stream != nil {
			stream.Close()
		}
	}
	copyOut := func(w io.Writer, r io.Reader) {
		defer copies.Done()
		if w == nil {
			w = io.Discard
		}
		src := &readErrors{r: r}
		_, err := io.Copy(w, src)
		switch {
		case err == nil:
		case src.err != nil:
			if r == io.Reader(stream) {
				// A reset stream cut stdout short: the exit code
				// alone would pass that off as success.
				streamBroken.Store(true)
			}
		default:
			// The caller's writer failed (a full disk, say): the
			// output has nowhere to go, and an agent left writing into
			// a full window would never finish.
			outputErrOnce.Do(func() { outputErr = fmt.Errorf("write the output of %s: %w", op, err) })
			abandon()
		}
	}
	copies.Add(2)
	go copyOut(st.Stderr, ch.Stderr())
	if stream == nil {
		go copyOut(st.Stdout, ch)
		if st.Stdin != nil {
			go func() {
				io.Copy(ch, st.Stdin)
				ch.CloseWrite()
			}()
		} else {
			ch.CloseWrite()
		}
	} else {
		go copyOut(st.Stdout, stream)
		ch.CloseWrite()
		if st.Stdin != nil {
			go func() {
				io.Copy(stream, st.Stdin)
				stream.CloseWrite()
			}()
		} else {
			stream.CloseWrite()
		}
	}
	done := make(chan struct{})
	defer close(done)
	// A forwarded signal the agent does not acknowledge in time ends the
	// wait: the client must not hang on a guest that stopped listening.
	var signalLost atomic.Bool
	var resize <-chan api.TermSize
	if st.TTY != nil {
		resize = st.TTY.Resize
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				abandon()
				return
			case sz, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				ch.SendRequest(sshproto.ReqWindowChange, false, ssh.Marshal(sshproto.WindowChange{Cols: uint32(sz.Cols), Rows: uint32(sz.Rows)}))
			case sig, ok := <-st.Signals:
				if !ok {
					st.Signals = nil
					continue
				}
				give := time.AfterFunc(SignalLimit, func() {
					signalLost.Store(true)
					abandon()
				})
				go func() {
					ch.SendRequest(sshproto.ReqSignal, true, ssh.Marshal(sshproto.Signal{Signal: sig}))
					give.Stop()
				}()
			}
		}
	}()

	code := -1
	for r := range reqs {
		switch r.Type {
		case sshproto.ReqExitStatus:
			var m sshproto.ExitStatus
			if ssh.Unmarshal(r.Payload, &m) == nil {
				code = int(m.Status)
			}
		case sshproto.ReqExitSignal:
			var m sshproto.ExitSignal
			if ssh.Unmarshal(r.Payload, &m) == nil {
				n, _ := signals.Parse(m.Signal) // an unknown signal adds nothing
				code = api.ExitSignalBase + n
			}
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
		if stream != nil && code >= 0 {
			// The operation is over: stdin still on its way would only
			// keep the agent draining the stream.
			stream.CloseWrite()
		}
	}
	if stream != nil && code < 0 {
		// No exit status: the stream's end may never come either.
		stream.Close()
	}
	copies.Wait()
	if outputErr != nil {
		return 0, outputErr
	}
	if streamBroken.Load() && code >= 0 {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, ErrOutputCut
	}
	if code < 0 {
		if signalLost.Load() {
			return 0, ErrSignalNotTaken
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, ErrConnectionLost
	}
	return code, nil
}
