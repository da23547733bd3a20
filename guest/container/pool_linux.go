package container

import (
	"context"
	"errors"
	"sync"
)

// pool keeps one warm helper per network kind (private namespace, host),
// so that starting a container does not pay for a Go runtime start-up or
// for creating namespaces. A kind is kept warm once it has been asked for;
// a taken helper is replaced at once, in the background.
type pool struct {
	r       *Runtime
	enabled bool

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	settled *sync.Cond // signalled when a fill ends
	slots   [2]slot
	wg      sync.WaitGroup
	// gen counts drains: a helper whose fill began before the last one
	// was made in the old mount table and is discarded.
	gen int
}

type slot struct {
	ch      chan spawnResult // holds at most one helper (or the error making one)
	filling bool
}

func newPool(r *Runtime, enabled bool) *pool {
	p := &pool{r: r, enabled: enabled, closing: make(chan struct{})}
	p.settled = sync.NewCond(&p.mu)
	for i := range p.slots {
		p.slots[i].ch = make(chan spawnResult, 1)
	}
	return p
}

func slotIndex(hostNet bool) int {
	if hostNet {
		return 1
	}
	return 0
}

// warm starts filling the kind's slot if it is empty and not being filled.
func (p *pool) warm(hostNet bool) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warmLocked(hostNet)
}

func (p *pool) warmLocked(hostNet bool) {
	s := &p.slots[slotIndex(hostNet)]
	if p.closed || s.filling || len(s.ch) > 0 {
		return
	}
	s.filling = true
	p.wg.Add(1)
	go p.fill(hostNet, p.gen)
}

func (p *pool) fill(hostNet bool, gen int) {
	defer p.wg.Done()
	h, err := p.r.spawn(hostNet)
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[slotIndex(hostNet)]
	s.filling = false
	p.settled.Broadcast()
	if p.closed || gen != p.gen {
		if h != nil {
			h.discard()
		}
		if !p.closed {
			p.warmLocked(hostNet)
		}
		return
	}
	s.ch <- spawnResult{h, err}
}

// drain discards the warm helpers, and those being made, and warms new
// ones: a helper's mount namespace is a copy of the agent's when it
// started, so a mount made since (a host folder) is missing from it.
func (p *pool) drain() {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	p.gen++
	var hs []*helper
	for i := range p.slots {
		if h, taken := p.takeLocked(i); taken {
			if h != nil {
				hs = append(hs, h)
			}
			p.warmLocked(i == 1)
		}
	}
	p.mu.Unlock()
	for _, h := range hs {
		h.discard()
	}
}

// get returns a helper of the kind: the warm one, the one being warmed, or
// (pool disabled) a new one.
func (p *pool) get(ctx context.Context, hostNet bool) (*helper, error) {
	if !p.enabled {
		return p.r.spawn(hostNet)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("runtime closed")
	}
	p.warmLocked(hostNet)
	s := &p.slots[slotIndex(hostNet)]
	p.mu.Unlock()
	var res spawnResult
	select {
	case res = <-s.ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closing:
		return nil, errors.New("runtime closed")
	}
	if res.err != nil {
		// The warm start failed; try once more in the open.
		return p.r.spawn(hostNet)
	}
	return res.h, nil
}

// takeLocked empties slot i: taken says whether it held a helper (or the
// error making one).
func (p *pool) takeLocked(i int) (h *helper, taken bool) {
	select {
	case res := <-p.slots[i].ch:
		return res.h, true
	default:
		return nil, false
	}
}

// settle waits until no helper is being started.
func (p *pool) settle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.slots[0].filling || p.slots[1].filling {
		p.settled.Wait()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	if !p.closed {
		close(p.closing)
	}
	p.closed = true
	var hs []*helper
	for i := range p.slots {
		if h, _ := p.takeLocked(i); h != nil {
			hs = append(hs, h)
		}
	}
	p.mu.Unlock()
	for _, h := range hs {
		h.discard()
	}
	p.wg.Wait()
}
