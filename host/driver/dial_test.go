package driver

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDialRetry(t *testing.T) {
	refused := errors.New("refused")
	tests := []struct {
		name      string
		failures  int  // attempts that fail before one succeeds; -1 = all
		exit      bool // close exited before dialling
		timeout   time.Duration
		wantErr   error
		wantTries int
	}{
		{"first attempt", 0, false, time.Minute, nil, 1},
		{"after two failures", 2, false, time.Minute, nil, 3},
		{"ctx ends", -1, false, 250 * time.Millisecond, context.DeadlineExceeded, 0},
		{"VM exited", -1, true, time.Minute, ErrVMExited, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			exited := make(chan struct{})
			if tt.exit {
				close(exited)
			}
			// Atomic: an attempt started on the last tick may still run
			// when DialRetry has returned.
			var tries atomic.Int32
			c, err := DialRetry(ctx, func(context.Context) (net.Conn, error) {
				if n := tries.Add(1); tt.failures >= 0 && int(n) > tt.failures {
					a, b := net.Pipe()
					b.Close()
					return a, nil
				}
				return nil, refused
			}, exited)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("DialRetry: %v", err)
				}
				c.Close()
				// At least: on a slow machine a tick may start one more
				// attempt before the successful one has been received.
				if n := int(tries.Load()); n < tt.wantTries {
					t.Fatalf("%d attempts, want %d", n, tt.wantTries)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DialRetry = %v, want %v", err, tt.wantErr)
			}
			if tries.Load() > 0 && !strings.Contains(err.Error(), "refused") {
				t.Fatalf("error %q does not name the last failure", err)
			}
		})
	}
}

// TestDialRetryExitWhileWaiting checks that an exit while an attempt hangs
// ends the wait at once.
func TestDialRetryExitWhileWaiting(t *testing.T) {
	exited := make(chan struct{})
	var closedAt atomic.Int64
	time.AfterFunc(20*time.Millisecond, func() {
		closedAt.Store(time.Now().UnixNano())
		close(exited)
	})
	_, err := DialRetry(context.Background(), func(ctx context.Context) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, exited)
	if !errors.Is(err, ErrVMExited) {
		t.Fatalf("DialRetry = %v, want ErrVMExited", err)
	}
	// The attempts never end by themselves: only the exit can have ended
	// the wait, and it should do so at once, not after an attempt's bound.
	if d := time.Since(time.Unix(0, closedAt.Load())); d > time.Second {
		t.Fatalf("returned %v after the exit", d)
	}
}

// TestDialRetryOverlaps checks that an attempt that hangs does not hold up
// the next one, that the hung attempt is cancelled once another succeeded,
// and that a connection it makes late is closed.
func TestDialRetryOverlaps(t *testing.T) {
	release := make(chan struct{})
	late := make(chan net.Conn, 1)
	cancelled := make(chan struct{})
	var tries atomic.Int32
	start := time.Now()
	c, err := DialRetry(context.Background(), func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		if tries.Add(1) == 1 {
			<-ctx.Done()
			close(cancelled)
			<-release
			late <- b
			return a, nil
		}
		go func() { b.Close() }()
		return a, nil
	}, nil)
	if err != nil {
		t.Fatalf("DialRetry: %v", err)
	}
	defer c.Close()
	// The first attempt returns only once cancelled, which DialRetry does
	// only after another succeeded: returning at all shows the overlap.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v, want about one interval", d)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the hung attempt was not cancelled")
	}
	close(release)
	peer := <-late
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read from the late connection's peer = %v, want EOF (closed by DialRetry)", err)
	}
}
