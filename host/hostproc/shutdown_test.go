package hostproc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// scriptedVM is a driver.VM whose guest and hypervisor obey only from a
// given step on, recording what it was asked: it checks the order and the
// bounds of the escalation, which the end-to-end tests check with QEMU.
type scriptedVM struct {
	obeys  string // first step that stops it: "request", "force", "kill"
	exited chan struct{}
	once   sync.Once
	mu     sync.Mutex
	asked  []string
}

func (v *scriptedVM) step(name string) error {
	v.mu.Lock()
	v.asked = append(v.asked, name)
	v.mu.Unlock()
	if name == v.obeys {
		v.once.Do(func() { close(v.exited) })
	}
	return nil
}

func (v *scriptedVM) RequestStop(context.Context) error             { return v.step("request") }
func (v *scriptedVM) ForceStop(context.Context) error               { return v.step("force") }
func (v *scriptedVM) Kill() error                                   { return v.step("kill") }
func (v *scriptedVM) DialAgent(context.Context) (net.Conn, error)   { return nil, io.EOF }
func (v *scriptedVM) DialForward(context.Context) (net.Conn, error) { return nil, io.EOF }
func (v *scriptedVM) Wait() error                                   { <-v.exited; return nil }
func (v *scriptedVM) Pid() int                                      { return 0 }
func (v *scriptedVM) Accelerator() string                           { return "test" }

func TestShutdownEscalation(t *testing.T) {
	tests := []struct {
		obeys     string
		wantAsked []string
		maxTook   time.Duration
	}{
		{"request", []string{"request"}, 500 * time.Millisecond},
		{"force", []string{"request", "force"}, powerButtonGrace + 500*time.Millisecond},
		{"kill", []string{"request", "force", "kill"}, powerButtonGrace + forceStopGrace + 500*time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.obeys, func(t *testing.T) {
			vm := &scriptedVM{obeys: tt.obeys, exited: make(chan struct{})}
			s := &shutdown{vm: vm, exited: vm.exited, silent: func() bool { return true },
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), hurry: make(chan time.Duration, 1)}
			start := time.Now()
			s.run(time.Minute) // a silent agent skips the graceful minute
			if took := time.Since(start); took > tt.maxTook {
				t.Errorf("took %s, want at most %s", took, tt.maxTook)
			}
			if len(vm.asked) != len(tt.wantAsked) {
				t.Fatalf("asked %v, want %v", vm.asked, tt.wantAsked)
			}
			for i := range tt.wantAsked {
				if vm.asked[i] != tt.wantAsked[i] {
					t.Fatalf("asked %v, want %v", vm.asked, tt.wantAsked)
				}
			}
		})
	}
}

func TestShutdownHurry(t *testing.T) {
	vm := &scriptedVM{obeys: "request", exited: make(chan struct{})}
	s := &shutdown{vm: vm, exited: vm.exited, silent: func() bool { return false },
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), hurry: make(chan time.Duration, 1)}
	// The graceful step has no agent to ask here; it only waits. A second,
	// shorter stop cuts that wait.
	s.agent = nil
	done := make(chan struct{})
	go func() {
		deadline := time.Now().Add(time.Minute)
		s.waitUntil(&deadline)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	s.hurry <- 0
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("a hurried stop still waited out its first timeout")
	}
}
