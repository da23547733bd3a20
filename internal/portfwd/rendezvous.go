package portfwd

import (
	"errors"
	"net"
	"sync"
)

// Rendezvous matches streams that reach a Gateway (its Claim is the
// gateway's Awaited) with the side that expects them. The expected name
// travels to the gateway's client another way, over a channel that is
// already authenticated, and is good for one stream.
type Rendezvous struct {
	mu       sync.Mutex
	expected map[string]*expectation
}

type expectation struct {
	conn      chan net.Conn // buffered: delivering never blocks
	forgotten bool
}

// Expect registers name. The stream that arrives under it is sent on the
// returned channel; forget unregisters name and closes a stream that was
// delivered but not received, or that arrives later. Call forget once the
// stream is received or no longer wanted.
func (r *Rendezvous) Expect(name string) (streams <-chan net.Conn, forget func(), err error) {
	if name == "" || len(name) > maxName {
		return nil, nil, errors.New("stream name must be 1 to 64 bytes")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.expected == nil {
		r.expected = make(map[string]*expectation)
	}
	if _, ok := r.expected[name]; ok {
		return nil, nil, errors.New("stream name already expected")
	}
	e := &expectation{conn: make(chan net.Conn, 1)}
	r.expected[name] = e
	forget = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.expected[name] == e {
			delete(r.expected, name)
		}
		e.forgotten = true
		select {
		case c := <-e.conn:
			c.Close()
		default:
		}
	}
	return e.conn, forget, nil
}

// Claim takes name's expectation, once: take delivers its stream.
func (r *Rendezvous) Claim(name string) (take func(net.Conn), ok bool) {
	r.mu.Lock()
	e, ok := r.expected[name]
	delete(r.expected, name)
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	return func(c net.Conn) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if e.forgotten {
			c.Close()
			return
		}
		e.conn <- c
	}, true
}
