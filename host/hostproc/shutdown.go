package hostproc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/sshclient"
)

// How long each step after the graceful one may take before the next.
const (
	// powerButtonGrace is for the guest to react to the hypervisor's power
	// button (its PID 1 shuts down cleanly but quickly).
	powerButtonGrace = 2 * time.Second
	// forceStopGrace is for the hypervisor to end the VM itself.
	forceStopGrace = time.Second
	// killGrace is for the hypervisor process to be reaped once killed.
	killGrace = 500 * time.Millisecond
	// EscalationLimit bounds the whole escalation after the graceful
	// timeout: a caller that waits timeout+EscalationLimit for the host
	// process to end has given it every chance.
	EscalationLimit = powerButtonGrace + forceStopGrace + killGrace
)

// DefaultStopTimeout is the graceful timeout of a stop nobody timed (the
// host process signalled by its OS).
const DefaultStopTimeout = 10 * time.Second

// shutdown ends a VM, each step only when the one before did not: the
// agent's graceful shutdown (skipped when the agent is silent), the
// hypervisor's power button, the hypervisor's own stop, and finally
// killing it. A later request with an earlier deadline hurries it on.
type shutdown struct {
	vm     driver.VM
	exited <-chan struct{} // closed when the VM has exited
	agent  *sshclient.Client
	silent func() bool
	log    *slog.Logger
	hurry  chan time.Duration
}

// run escalates until the VM has exited.
func (s *shutdown) run(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	if s.silent() {
		s.log.Warn("agent is silent; skipping the graceful shutdown")
		deadline = time.Now()
	} else {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		go func() {
			err := s.agent.Call(ctx, api.OpShutdown, nil, nil)
			if err != nil && !errors.Is(err, sshclient.ErrConnectionLost) && ctx.Err() == nil {
				s.log.Warn("graceful shutdown request failed", "err", err)
			}
		}()
	}
	if s.waitUntil(&deadline) {
		s.log.Info("VM stopped")
		return
	}
	s.log.Warn("guest did not shut down in time; pressing the power button")
	s.hypervisorStep(func(ctx context.Context) error { return s.vm.RequestStop(ctx) }, "request stop")
	if s.waitFor(powerButtonGrace) {
		s.log.Info("VM stopped after the power button")
		return
	}
	s.log.Warn("guest ignored the power button; stopping it through the hypervisor")
	s.hypervisorStep(func(ctx context.Context) error { return s.vm.ForceStop(ctx) }, "force stop")
	if s.waitFor(forceStopGrace) {
		s.log.Info("VM stopped by the hypervisor")
		return
	}
	s.log.Warn("hypervisor did not stop the VM; killing it")
	if err := s.vm.Kill(); err != nil {
		s.log.Warn("kill", "err", err)
	}
	<-s.exited
}

// hypervisorStep runs one hypervisor request, bounded so that a hung
// hypervisor cannot hold the escalation.
func (s *shutdown) hypervisorStep(step func(context.Context) error, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := step(ctx); err != nil {
		s.log.Warn(what, "err", err)
	}
}

// waitUntil waits for the VM to exit until *deadline, which a hurry may
// bring forward. It reports whether the VM exited.
func (s *shutdown) waitUntil(deadline *time.Time) bool {
	for {
		t := time.NewTimer(time.Until(*deadline))
		select {
		case <-s.exited:
			t.Stop()
			return true
		case <-t.C:
			return false
		case d := <-s.hurry:
			t.Stop()
			if nd := time.Now().Add(d); nd.Before(*deadline) {
				*deadline = nd
			}
		}
	}
}

func (s *shutdown) waitFor(d time.Duration) bool {
	deadline := time.Now().Add(d)
	return s.waitUntil(&deadline)
}
