package dockerapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// Stream numbers of the multiplexed stream format.
const (
	streamStdin  = 0
	streamStdout = 1
	streamStderr = 2
	// streamSystem carries an error the engine reports mid-stream.
	streamSystem = 3
)

// muxWriter frames what is written into one stream of Docker's
// multiplexed format (an 8-byte header: the stream number, three zero
// bytes, the payload's length big-endian; then the payload). Writers of
// the streams of one connection share mu, so that frames never interleave.
type muxWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream byte
}

// newMux returns the stdout and stderr writers of w's multiplexed stream.
func newMux(w io.Writer) (stdout, stderr *muxWriter) {
	mu := &sync.Mutex{}
	return &muxWriter{mu: mu, w: w, stream: streamStdout}, &muxWriter{mu: mu, w: w, stream: streamStderr}
}

// maxFrame bounds one frame, as Docker's writer does not but its readers
// buffer whole frames.
const maxFrame = 1 << 20

func (m *muxWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		var hdr [8]byte
		hdr[0] = m.stream
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(chunk)))
		if _, err := m.w.Write(hdr[:]); err != nil {
			return n, err
		}
		k, err := m.w.Write(chunk)
		n += k
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

// flushWriter flushes after every write: a stream's bytes reach the
// client as the container writes them.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		fw.f.Flush()
	}
	return n, err
}

func flushing(w http.ResponseWriter) io.Writer {
	if f, ok := w.(http.Flusher); ok {
		return flushWriter{w: w, f: f}
	}
	return w
}

// hijacked is a connection taken over from the HTTP server for a raw
// stream: reads come from what the server had buffered first, then from
// the connection itself. (Reading on through the server's reader would
// cancel the request's context at the client's half-close.)
type hijacked struct {
	net.Conn
	r io.Reader
}

func (h *hijacked) Read(p []byte) (int, error) { return h.r.Read(p) }

// CloseWrite ends the output stream while the client may still write.
func (h *hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return h.Conn.Close()
}

// hijack answers the request with the switch to a raw stream that
// Docker's attach and exec start use: 101 UPGRADED when the client asked
// to upgrade (as the docker CLI does), else 200 OK; the connection is
// then the stream's.
func hijack(w http.ResponseWriter, r *http.Request, contentType string) (*hijacked, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, fmt.Errorf("connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	var head string
	if r.Header.Get("Upgrade") != "" {
		head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + contentType + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
	} else {
		head = "HTTP/1.1 200 OK\r\nContent-Type: " + contentType + "\r\n\r\n"
	}
	if _, err := io.WriteString(conn, head); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hijack: %w", err)
	}
	return &hijacked{Conn: conn, r: io.MultiReader(bytes.NewReader(buffered(rw.Reader)), conn)}, nil
}

// buffered takes what r has read ahead.
func buffered(r *bufio.Reader) []byte {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := r.Peek(n)
	return append([]byte(nil), b...)
}

// Content types of raw streams.
const (
	rawStream         = "application/vnd.docker.raw-stream"
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// streamType is the content type of a container's or exec's output.
func streamType(tty bool) string {
	if tty {
		return rawStream
	}
	return multiplexedStream
}

// outputWriters returns where a process's stdout and stderr go on w: raw
// bytes (both to w) with a terminal, frames without.
func outputWriters(w io.Writer, tty bool) (stdout, stderr io.Writer) {
	if tty {
		return w, w
	}
	o, e := newMux(w)
	return o, e
}
