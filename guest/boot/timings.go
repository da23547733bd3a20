package boot

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timing is how long one boot step took.
type Timing struct {
	Step     string
	Start    time.Time
	Duration time.Duration
}

// Timings collects boot step durations from concurrent steps. The zero
// value is ready to use; a nil *Timings records nothing.
type Timings struct {
	mu   sync.Mutex
	list []Timing
}

// Add records that step ran from start until now.
func (t *Timings) Add(step string, start time.Time) {
	if t == nil {
		return
	}
	d := time.Since(start)
	t.mu.Lock()
	t.list = append(t.list, Timing{Step: step, Start: start, Duration: d})
	t.mu.Unlock()
}

// List returns the recorded steps ordered by start time.
func (t *Timings) List() []Timing {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	out := append([]Timing(nil), t.list...)
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// String formats the steps one per line, with start offsets relative to the
// first step: "+12.3ms  4.5ms  step".
func (t *Timings) String() string {
	l := t.List()
	if len(l) == 0 {
		return ""
	}
	var b strings.Builder
	t0 := l[0].Start
	for _, s := range l {
		fmt.Fprintf(&b, "+%-9s %-9s %s\n", round(s.Start.Sub(t0)), round(s.Duration), s.Step)
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	return d.Round(100 * time.Microsecond)
}
