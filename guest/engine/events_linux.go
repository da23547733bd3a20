package engine

import (
	"maps"
	"strconv"
	"sync"
	"time"
)

// Event is something that happened to an object of the engine, as
// Docker's event stream tells it: Type "container", "image" or
// "network"; Action such as "create", "start", "die", "destroy".
type Event struct {
	Type       string
	Action     string
	ID         string
	Attributes map[string]string
	Time       time.Time
}

// eventBus fans events out to subscribers and keeps the recent ones for
// subscribers that ask for the past (docker events --since).
type eventBus struct {
	mu     sync.Mutex
	recent []Event
	subs   map[chan Event]struct{}
}

// eventHistory bounds the events kept for --since.
const eventHistory = 1024

// subscriberBuffer is how far a subscriber may fall behind; events it has
// no room for are dropped rather than stall the engine.
const subscriberBuffer = 256

func newEventBus() *eventBus { return &eventBus{subs: map[chan Event]struct{}{}} }

func (b *eventBus) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recent = append(b.recent, ev)
	if len(b.recent) > eventHistory {
		b.recent = append(b.recent[:0:0], b.recent[len(b.recent)-eventHistory:]...)
	}
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe returns the kept events since the given time (none when it
// is zero) and a channel of the events from now on; cancel ends the
// subscription and closes the channel.
func (e *Engine) Subscribe(since time.Time) (past []Event, events <-chan Event, cancel func()) {
	b := e.events
	ch := make(chan Event, subscriberBuffer)
	b.mu.Lock()
	if !since.IsZero() {
		for _, ev := range b.recent {
			if !ev.Time.Before(since) {
				past = append(past, ev)
			}
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return past, ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Publish tells subscribers of an event the engine did not make itself
// (the image operations the API serves).
func (e *Engine) Publish(ev Event) { e.events.publish(ev) }

// containerEvent is an event of c, with the attributes Docker gives them:
// name, image, the container's labels, and extra. The caller holds c.mu.
func (c *managedContainer) containerEvent(action string, extra map[string]string) Event {
	attrs := map[string]string{"name": c.rec.Name, "image": c.rec.Config.Image}
	maps.Copy(attrs, c.rec.Config.Labels)
	maps.Copy(attrs, extra)
	return Event{Type: "container", Action: action, ID: c.rec.ID, Attributes: attrs, Time: time.Now()}
}

func exitCodeAttr(code int) map[string]string {
	return map[string]string{"exitCode": strconv.Itoa(code)}
}
