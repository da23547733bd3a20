package hostproc

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vmbox/vmbox/host/driver"
)

// busyCheckTimeout bounds the question to the agent whether containers run
// (and the guest's sync when none does); a guest that does not answer in
// time is not paused.
const busyCheckTimeout = 5 * time.Second

// pauseTimeout bounds one pause or resume request to the hypervisor.
const pauseTimeout = 5 * time.Second

// idlePauser pauses the VM once nothing has used it for a while: no
// client operation or Docker connection open, none begun for `after`, and
// no container running in the guest (which has work of its own while one
// does). A paused guest costs the host no CPU, where an idle running one
// still wakes for its kernel's timers. The next use resumes it before it
// goes on, so a client never meets a paused guest.
type idlePauser struct {
	vm    driver.Pauser
	after time.Duration
	// busy reports whether the guest has work of its own (containers
	// run); when it has none, it has also written out its dirty data.
	busy func(context.Context) (bool, error)
	// changed hears each pause (the time it began) and resume (nil).
	changed func(pausedSince *time.Time)
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	users   int       // uses begun and not ended
	lastUse time.Time // when the last use began or ended
	paused  bool
	closed  bool
}

func newIdlePauser(vm driver.Pauser, after time.Duration, busy func(context.Context) (bool, error), changed func(*time.Time), log *slog.Logger) *idlePauser {
	return &idlePauser{vm: vm, after: after, busy: busy, changed: changed, log: log, now: time.Now, lastUse: time.Now()}
}

// use begins a use of the guest, resuming it first if it is paused; the
// use lasts until done is called. It fails only when the hypervisor cannot
// resume the guest.
func (p *idlePauser) use(ctx context.Context) (done func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		if err := p.resumeLocked(ctx); err != nil {
			return nil, err
		}
	}
	p.users++
	p.lastUse = p.now()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.users--
			p.lastUse = p.now()
		})
	}, nil
}

func (p *idlePauser) resumeLocked(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	if err := p.vm.Resume(rctx); err != nil {
		return fmt.Errorf("resume the VM paused while idle: %w", err)
	}
	p.paused = false
	p.log.Info("VM resumed")
	p.changed(nil)
	return nil
}

// run checks every interval whether the guest may be paused, until ctx
// ends.
func (p *idlePauser) run(ctx context.Context) {
	interval := min(p.after/4, 5*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.check(ctx)
	}
}

// check pauses the guest if it has been unused for p.after and runs no
// container. A guest found busy (or silent) is asked again only after
// another p.after, so that a running container does not cost a question
// every few seconds.
func (p *idlePauser) check(ctx context.Context) {
	p.mu.Lock()
	quiet := p.quietLocked()
	p.mu.Unlock()
	if !quiet {
		return
	}
	bctx, cancel := context.WithTimeout(ctx, busyCheckTimeout)
	busy, err := p.busy(bctx)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.log.Debug("not pausing: the agent did not say whether containers run", "err", err)
		p.lastUse = p.now()
		return
	case busy:
		p.lastUse = p.now()
		return
	case !p.quietLocked():
		return // used meanwhile
	}
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	if err := p.vm.Pause(pctx); err != nil {
		p.log.Warn("pause the idle VM", "err", err)
		p.lastUse = p.now()
		return
	}
	p.paused = true
	since := p.now()
	p.log.Info("VM paused while idle", "unusedFor", since.Sub(p.lastUse).Round(time.Second))
	p.changed(&since)
}

// quietLocked reports whether the guest runs, may be paused, and has had
// no use for p.after: a use begun or ended since counts against it.
func (p *idlePauser) quietLocked() bool {
	return !p.paused && !p.closed && p.users == 0 && p.now().Sub(p.lastUse) >= p.after
}

// close resumes the guest if it is paused (a shutdown needs it running)
// and pauses it no more.
func (p *idlePauser) close(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.paused {
		if err := p.resumeLocked(ctx); err != nil {
			p.log.Warn("shutting down a VM paused while idle", "err", err)
		}
	}
}
