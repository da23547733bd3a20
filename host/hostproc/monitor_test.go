package hostproc

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
)

// pingServer is an SSH server that answers pings (with a clock skew) while
// answering is true, and records clock settings.
type pingServer struct {
	answering atomic.Bool
	skew      atomic.Int64 // ns
	setTo     atomic.Int64
	pings     atomic.Int32 // received
}

func (p *pingServer) serve(reqs <-chan *ssh.Request) {
	for r := range reqs {
		switch r.Type {
		case sshproto.ReqPing:
			p.pings.Add(1)
			// A frozen agent answers once it thaws, in order.
			for !p.answering.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			r.Reply(true, ssh.Marshal(sshproto.NewClock(time.Now().Add(time.Duration(p.skew.Load())))))
		case sshproto.ReqSetTime:
			var c sshproto.Clock
			ssh.Unmarshal(r.Payload, &c)
			p.setTo.Store(int64(c.UnixNano))
			p.skew.Store(0)
			r.Reply(true, nil)
		default:
			r.Reply(false, nil)
		}
	}
}

func monitored(t *testing.T, p *pingServer, interval time.Duration) (*monitor, *instance.Instance) {
	t.Helper()
	return monitoredWith(t, p, interval, nil)
}

// monitoredWith is monitored with the hypervisor's run state from
// runState (nil: a driver without it).
func monitoredWith(t *testing.T, p *pingServer, interval time.Duration, runState func(context.Context) (string, error)) (*monitor, *instance.Instance) {
	t.Helper()
	conn, inst := agentConn(t, func(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
		go rejectChannels(chans)
		p.serve(reqs)
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	info := instance.BootInfo{Pid: 1, Driver: "test"}
	if err := inst.WriteBootInfo(info); err != nil {
		t.Fatal(err)
	}
	m := newMonitor(conn, inst, info, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.interval, m.limit = interval, 6*interval
	m.runState = runState
	go m.run(ctx)
	return m, inst
}

func bootInfoOf(t *testing.T, inst *instance.Instance) *instance.BootInfo {
	t.Helper()
	bi, err := inst.ReadBootInfo()
	if err != nil {
		t.Fatal(err)
	}
	return bi
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMonitorRecordsSilence(t *testing.T) {
	p := &pingServer{}
	p.answering.Store(true)
	m, inst := monitored(t, p, 100*time.Millisecond)
	silentSince := func() *time.Time { return bootInfoOf(t, inst).AgentSilentSince }
	time.Sleep(time.Second)
	if m.Silent() || silentSince() != nil || m.admit() != nil {
		t.Fatal("an answering agent is taken for silent")
	}
	p.answering.Store(false)
	waitFor(t, "silence recorded in the boot marker", func() bool { return silentSince() != nil })
	if !m.Silent() || m.admit() == nil {
		t.Fatal("a silent agent is admitted")
	}
	p.answering.Store(true)
	waitFor(t, "recovery recorded", func() bool { return silentSince() == nil })
	if m.admit() != nil {
		t.Fatal("a recovered agent is refused")
	}
}

// TestMonitorIdlePaused: a guest the host process paused is neither
// pinged nor counted silent however long it is paused; on resume its clock
// is set before setIdlePaused returns (before the use that resumed it).
func TestMonitorIdlePaused(t *testing.T) {
	p := &pingServer{}
	p.answering.Store(true)
	m, inst := monitored(t, p, 100*time.Millisecond)
	bootInfo := func() *instance.BootInfo { return bootInfoOf(t, inst) }
	waitFor(t, "pings", func() bool { return p.pings.Load() > 2 })
	since := time.Now()
	m.setIdlePaused(&since)
	time.Sleep(200 * time.Millisecond) // a ping under way ends
	p.answering.Store(false)
	before := p.pings.Load()
	time.Sleep(time.Second) // past the silence limit, 600 ms
	if bi := bootInfo(); bi.IdlePausedSince == nil || !bi.IdlePausedSince.Equal(since) || bi.AgentSilentSince != nil {
		t.Fatalf("boot marker of a paused guest: paused since %v, silent since %v", bi.IdlePausedSince, bi.AgentSilentSince)
	}
	if n := p.pings.Load() - before; n != 0 {
		t.Fatalf("a paused guest was pinged %d times", n)
	}
	p.answering.Store(true)
	p.skew.Store(int64(-3 * time.Second))
	m.setIdlePaused(nil)
	if p.setTo.Load() == 0 {
		t.Fatal("the resumed guest's clock was not set before setIdlePaused returned")
	}
	if bi := bootInfo(); bi.IdlePausedSince != nil || bi.AgentSilentSince != nil || m.admit() != nil {
		t.Fatalf("after resuming: paused since %v, silent since %v, admit %v", bi.IdlePausedSince, bi.AgentSilentSince, m.admit())
	}
	waitFor(t, "pings again", func() bool { return p.pings.Load() > before+2 })
}

// TestMonitorRecordsHypervisorState: while the agent is silent, the
// boot marker says what the hypervisor holds the guest in, unless it is
// running; an answer from the agent clears it.
func TestMonitorRecordsHypervisorState(t *testing.T) {
	for _, tt := range []struct {
		state, want string
	}{
		{"io-error", "io-error"},
		{"paused", "paused"},
		{"running", ""},
	} {
		t.Run(tt.state, func(t *testing.T) {
			p := &pingServer{}
			var asked atomic.Int32
			m, inst := monitoredWith(t, p, 100*time.Millisecond, func(context.Context) (string, error) {
				asked.Add(1)
				return tt.state, nil
			})
			bootInfo := func() *instance.BootInfo { return bootInfoOf(t, inst) }
			waitFor(t, "silence recorded", func() bool { return bootInfo().AgentSilentSince != nil })
			waitFor(t, "the hypervisor asked", func() bool { return asked.Load() > 0 })
			if tt.want != "" {
				waitFor(t, "the hypervisor's state recorded", func() bool { return bootInfo().HypervisorState == tt.want })
			} else {
				time.Sleep(300 * time.Millisecond)
				if got := bootInfo().HypervisorState; got != "" {
					t.Fatalf("a running guest recorded as %q", got)
				}
			}
			p.answering.Store(true)
			m.pingNow()
			waitFor(t, "recovery clears it", func() bool {
				bi := bootInfo()
				return bi.AgentSilentSince == nil && bi.HypervisorState == ""
			})
		})
	}
}

// TestMonitorCorrectsClock: a guest clock off by more than maxDrift is
// set at once after the start (a boot leaves it behind), and at a later
// ping when it drifts afterwards.
func TestMonitorCorrectsClock(t *testing.T) {
	for _, tt := range []struct {
		name       string
		interval   time.Duration
		driftAfter time.Duration // when the guest's clock goes 3 s behind
	}{
		{"at the start", time.Hour, 0},
		{"at a later ping", 100 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &pingServer{}
			p.answering.Store(true)
			if tt.driftAfter == 0 {
				p.skew.Store(int64(-3 * time.Second))
			}
			monitored(t, p, tt.interval)
			if tt.driftAfter > 0 {
				time.Sleep(tt.driftAfter)
				if p.setTo.Load() != 0 {
					t.Fatal("a guest clock in step was set")
				}
				p.skew.Store(int64(-3 * time.Second))
			}
			waitFor(t, "guest clock set", func() bool { return p.setTo.Load() != 0 })
			if d := time.Since(time.Unix(0, p.setTo.Load())); d < -time.Second || d > time.Second {
				t.Fatalf("guest clock set %s away from the host's", d)
			}
		})
	}
}
