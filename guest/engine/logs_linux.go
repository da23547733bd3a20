package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// Logs writes the container's recorded output (the last Tail lines per
// the log, all when negative) to stdout and stderr; with a terminal
// everything is stdout. With Follow it goes on while the container runs.
func (e *Engine) Logs(ctx context.Context, args api.LogsArgs, stdout, stderr io.Writer) error {
	c, err := e.lookup(args.Container)
	if err != nil {
		return err
	}
	// The snapshot of the file and the follower's registration happen
	// under outMu, which the pumps hold while they write: no line is
	// missed or repeated between them.
	c.mu.Lock()
	r := c.current()
	path := c.logPath()
	c.mu.Unlock()
	var f *follower
	c.outMu.Lock()
	entries, err := readLog(path, args.Tail)
	if err == nil && args.Follow && r != nil {
		f = newFollower()
		c.followers[f] = struct{}{}
	}
	c.outMu.Unlock()
	if err != nil {
		return err
	}
	write := func(es []logEntry) error {
		for _, en := range es {
			if !args.Since.IsZero() && en.Time.Before(args.Since) || !args.Until.IsZero() && en.Time.After(args.Until) {
				continue
			}
			w := stdout
			if en.Stream == "stderr" {
				w = stderr
			}
			if w == nil {
				continue
			}
			line := en.Log
			if args.Timestamps {
				line = en.Time.Format(time.RFC3339Nano) + " " + line
			}
			if _, err := io.WriteString(w, line); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(entries); err != nil || f == nil {
		if f != nil {
			c.unfollow(f)
		}
		return err
	}
	defer c.unfollow(f)
	go func() {
		select {
		case <-r.drained:
		case <-ctx.Done():
		}
		f.close()
	}()
	for {
		es, ok := f.next()
		if !ok {
			return ctx.Err()
		}
		if err := write(es); err != nil {
			return err
		}
	}
}

func (c *managedContainer) unfollow(f *follower) {
	c.outMu.Lock()
	delete(c.followers, f)
	c.outMu.Unlock()
	f.close()
}

// readLog reads a json-file log, keeping the last tail entries (all when
// tail is negative).
func readLog(path string, tail int) ([]logEntry, error) {
	if tail == 0 {
		return nil, nil
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	defer fh.Close()
	var out []logEntry
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var en logEntry
		if json.Unmarshal(sc.Bytes(), &en) != nil {
			continue // a line cut by a crash
		}
		out = append(out, en)
		if tail > 0 && len(out) > 2*tail {
			out = append(out[:0:0], out[len(out)-tail:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read container log: %w", err)
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out, nil
}
