package hostproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recordingPauser is a hypervisor that only counts what it was asked.
type recordingPauser struct {
	mu              sync.Mutex
	pauses, resumes int
	fail            error
}

func (r *recordingPauser) Pause(context.Context) error  { return r.record(&r.pauses) }
func (r *recordingPauser) Resume(context.Context) error { return r.record(&r.resumes) }

// record counts one request in *n, unless the hypervisor is set to fail.
func (r *recordingPauser) record(n *int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	*n++
	return nil
}

func newTestPauser(vm *recordingPauser, busy func(context.Context) (bool, error)) (*idlePauser, *time.Time, *[]*time.Time) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	var changes []*time.Time
	p := newIdlePauser(vm, time.Minute, busy, func(t *time.Time) { changes = append(changes, t) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.now = func() time.Time { return now }
	p.lastUse = now
	return p, &now, &changes
}

func TestIdlePauserCheck(t *testing.T) {
	idle := func(context.Context) (bool, error) { return false, nil }
	tests := []struct {
		name      string
		busy      func(context.Context) (bool, error)
		wait      time.Duration
		inUse     bool // a use is open during the check
		fail      error
		wantPause bool
	}{
		{name: "unused long enough, no container", busy: idle, wait: time.Minute, wantPause: true},
		{name: "used recently", busy: idle, wait: 59 * time.Second},
		{name: "a use is open", busy: idle, wait: time.Hour, inUse: true},
		{name: "a container runs", busy: func(context.Context) (bool, error) { return true, nil }, wait: time.Hour},
		{name: "the agent does not answer", busy: func(context.Context) (bool, error) { return false, errors.New("timeout") }, wait: time.Hour},
		{name: "the hypervisor refuses", busy: idle, wait: time.Hour, fail: errors.New("qmp: no")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm := &recordingPauser{}
			p, now, changes := newTestPauser(vm, tt.busy)
			if tt.inUse {
				if _, err := p.use(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			vm.fail = tt.fail
			*now = now.Add(tt.wait)
			p.check(context.Background())
			if p.paused != tt.wantPause || (vm.pauses == 1) != tt.wantPause {
				t.Fatalf("paused = %v after %d pause requests, want %v", p.paused, vm.pauses, tt.wantPause)
			}
			if tt.wantPause && (len(*changes) != 1 || (*changes)[0] == nil || !(*changes)[0].Equal(*now)) {
				t.Fatalf("changes = %v, want one pause at %v", *changes, *now)
			}
			if !tt.wantPause && len(*changes) != 0 {
				t.Fatalf("changes = %v, want none", *changes)
			}
		})
	}
}

// A guest found busy is asked again only after another full delay.
func TestIdlePauserAsksABusyGuestLater(t *testing.T) {
	asked := 0
	busy := true
	p, now, _ := newTestPauser(&recordingPauser{}, func(context.Context) (bool, error) { asked++; return busy, nil })
	*now = now.Add(time.Minute)
	p.check(context.Background())
	busy = false
	*now = now.Add(30 * time.Second)
	p.check(context.Background())
	if asked != 1 || p.paused {
		t.Fatalf("asked %d times, paused %v; want once, not paused", asked, p.paused)
	}
	*now = now.Add(30 * time.Second)
	p.check(context.Background())
	if asked != 2 || !p.paused {
		t.Fatalf("asked %d times, paused %v; want twice, paused", asked, p.paused)
	}
}

// A use that begins while the agent is being asked cancels the pause.
func TestIdlePauserUseDuringCheck(t *testing.T) {
	var p *idlePauser
	var done func()
	vm := &recordingPauser{}
	p, now, _ := newTestPauser(vm, func(context.Context) (bool, error) {
		var err error
		done, err = p.use(context.Background())
		return false, err
	})
	*now = now.Add(time.Minute)
	p.check(context.Background())
	done()
	if p.paused || vm.pauses != 0 {
		t.Fatalf("paused = %v (%d requests) though a use began during the check", p.paused, vm.pauses)
	}
}

func TestIdlePauserUseResumes(t *testing.T) {
	vm := &recordingPauser{}
	p, now, changes := newTestPauser(vm, func(context.Context) (bool, error) { return false, nil })
	*now = now.Add(time.Minute)
	p.check(context.Background())
	if !p.paused {
		t.Fatal("not paused")
	}
	done, err := p.use(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.paused || vm.resumes != 1 || len(*changes) != 2 || (*changes)[1] != nil {
		t.Fatalf("after use: paused %v, %d resumes, changes %v", p.paused, vm.resumes, *changes)
	}
	// Uses of a running guest resume nothing.
	done2, _ := p.use(context.Background())
	done()
	done()
	done2()
	if vm.resumes != 1 || p.users != 0 {
		t.Fatalf("%d resumes, %d users; want 1 and 0", vm.resumes, p.users)
	}
}

func TestIdlePauserResumeFails(t *testing.T) {
	vm := &recordingPauser{}
	p, now, _ := newTestPauser(vm, func(context.Context) (bool, error) { return false, nil })
	*now = now.Add(time.Minute)
	p.check(context.Background())
	vm.fail = errors.New("qmp: gone")
	if _, err := p.use(context.Background()); err == nil {
		t.Fatal("use succeeded though the guest could not be resumed")
	}
	if !p.paused || p.users != 0 {
		t.Fatalf("paused %v, users %d; want still paused, no user", p.paused, p.users)
	}
	vm.fail = nil
	if _, err := p.use(context.Background()); err != nil || p.paused {
		t.Fatalf("second use: %v, paused %v", err, p.paused)
	}
}

func TestIdlePauserClose(t *testing.T) {
	vm := &recordingPauser{}
	p, now, _ := newTestPauser(vm, func(context.Context) (bool, error) { return false, nil })
	*now = now.Add(time.Minute)
	p.check(context.Background())
	p.close(context.Background())
	if p.paused || vm.resumes != 1 {
		t.Fatalf("close left the guest paused (%d resumes)", vm.resumes)
	}
	*now = now.Add(time.Hour)
	p.check(context.Background())
	if p.paused || vm.pauses != 1 {
		t.Fatalf("paused again after close (%d pauses)", vm.pauses)
	}
}
