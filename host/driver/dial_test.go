package driver

import (
	"context"
	"errors"
	"net"
	"strings"
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
			tries := 0
			c, err := DialRetry(ctx, func(context.Context) (net.Conn, error) {
				tries++
				if tt.failures >= 0 && tries > tt.failures {
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
				if tries != tt.wantTries {
					t.Fatalf("%d attempts, want %d", tries, tt.wantTries)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DialRetry = %v, want %v", err, tt.wantErr)
			}
			if tries > 0 && !strings.Contains(err.Error(), "refused") {
				t.Fatalf("error %q does not name the last failure", err)
			}
		})
	}
}

// TestDialRetryExitWhileWaiting checks that an exit between attempts ends
// the wait at once.
func TestDialRetryExitWhileWaiting(t *testing.T) {
	exited := make(chan struct{})
	start := time.Now()
	_, err := DialRetry(context.Background(), func(context.Context) (net.Conn, error) {
		close(exited)
		return nil, errors.New("refused")
	}, exited)
	if !errors.Is(err, ErrVMExited) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("DialRetry = %v, want ErrVMExited naming the refusal", err)
	}
	if d := time.Since(start); d >= DialInterval {
		t.Fatalf("took %v, want less than one interval", d)
	}
}
