package engine

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

// Stream numbers, as in Docker's multiplexed stream format.
const (
	streamStdout = 1
	streamStderr = 2
)

func streamName(s int) string {
	if s == streamStderr {
		return "stderr"
	}
	return "stdout"
}

// logEntry is one line of a container's log, in Docker's json-file format
// (one JSON object per line: log, stream, time), which keeps stdout and
// stderr apart and timestamps every line.
type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// maxLogLine is where a line without a newline is cut into entries, as
// Docker cuts at 16 KiB.
const maxLogLine = 16 << 10

// logWriter appends a container run's output to its log file.
type logWriter struct {
	f       *os.File
	partial [3][]byte // per stream: the unfinished line
	buf     bytes.Buffer
}

func openLog(path string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f}, nil
}

// add records p as output of stream and returns the entries it completed.
func (w *logWriter) add(stream int, p []byte, now time.Time) []logEntry {
	var out []logEntry
	part := w.partial[stream]
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			part = append(part, p...)
			p = nil
			for len(part) >= maxLogLine {
				out = append(out, logEntry{Log: string(part[:maxLogLine]), Stream: streamName(stream), Time: now})
				part = part[maxLogLine:]
			}
			break
		}
		line := append(part, p[:i+1]...)
		out = append(out, logEntry{Log: string(line), Stream: streamName(stream), Time: now})
		part = nil
		p = p[i+1:]
	}
	w.partial[stream] = append([]byte(nil), part...)
	w.write(out)
	return out
}

// flush records the unfinished line of stream, if any.
func (w *logWriter) flush(stream int, now time.Time) []logEntry {
	if len(w.partial[stream]) == 0 {
		return nil
	}
	out := []logEntry{{Log: string(w.partial[stream]), Stream: streamName(stream), Time: now}}
	w.partial[stream] = nil
	w.write(out)
	return out
}

func (w *logWriter) write(entries []logEntry) {
	if len(entries) == 0 || w.f == nil {
		return
	}
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	for i := range entries {
		_ = enc.Encode(&entries[i]) // adds the newline
	}
	// A full disk loses log lines, never the container's output to
	// attached clients.
	_, _ = w.f.Write(w.buf.Bytes())
}

func (w *logWriter) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// attachment is a client attached to a container's output.
type attachment struct {
	stdout, stderr io.Writer
	failed         chan struct{} // closed when a write to the client failed
	once           sync.Once
}

// follower is a `logs -f` client: the pump queues entries for it and it
// writes them out on its own goroutine, so a slow client never stalls the
// container.
type follower struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []logEntry
	closed bool
}

func newFollower() *follower {
	f := &follower{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *follower) push(entries []logEntry) {
	if len(entries) == 0 {
		return
	}
	f.mu.Lock()
	f.queue = append(f.queue, entries...)
	f.mu.Unlock()
	f.cond.Signal()
}

func (f *follower) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
}

// next returns the queued entries, waiting for some; ok is false once the
// follower is closed and drained.
func (f *follower) next() (entries []logEntry, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) == 0 && !f.closed {
		f.cond.Wait()
	}
	entries, f.queue = f.queue, nil
	return entries, len(entries) > 0 || !f.closed
}

// pump copies one output stream of a run to the log, the attached clients
// and the log followers, until the stream ends.
func (c *managedContainer) pump(r io.Reader, stream int, lw *logWriter, tty bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.deliver(stream, buf[:n], lw, tty)
		}
		if err != nil {
			break
		}
	}
	c.outMu.Lock()
	entries := lw.flush(stream, time.Now().UTC())
	for f := range c.followers {
		f.push(entries)
	}
	c.outMu.Unlock()
}

func (c *managedContainer) deliver(stream int, p []byte, lw *logWriter, tty bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	entries := lw.add(stream, p, time.Now().UTC())
	for f := range c.followers {
		f.push(entries)
	}
	for a := range c.attached {
		w := a.stdout
		if stream == streamStderr && !tty {
			w = a.stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			delete(c.attached, a)
			a.once.Do(func() { close(a.failed) })
		}
	}
}
