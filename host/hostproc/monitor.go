package hostproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/instance"
)

// Clock-correction thresholds: the guest's clock is set when it is off by
// more than maxDrift, measured by a ping whose round trip is short enough
// (maxClockRTT) for the reading to be trusted.
const (
	maxDrift    = 100 * time.Millisecond
	maxClockRTT = 500 * time.Millisecond
	// wallJump is a disagreement between the wall and monotonic clocks
	// that means the host slept (or its clock was set): check the guest's
	// clock at once rather than at the next ping.
	wallJump = time.Second
)

// stateCheckTimeout bounds one question to the hypervisor about whether
// it runs the guest, asked at each tick while the agent is silent (a ping
// to a paused guest waits for its answer until the guest runs again).
const stateCheckTimeout = 2 * time.Second

// resumeClockLimit bounds the wait for a resumed guest to take the host's
// time before the use that resumed it goes on.
const resumeClockLimit = 2 * time.Second

// monitor watches the agent through the one SSH connection: a ping every
// sshproto.PingInterval (sooner after the host's clock jumped), a record of
// silence in the boot marker, and clock correction.
type monitor struct {
	conn ssh.Conn
	inst *instance.Instance
	log  *slog.Logger
	// runState, when the driver has it, says whether the hypervisor runs
	// the guest (driver.RunStateReporter); asked while the agent is
	// silent, so that status can tell a hung guest from a paused or
	// halted one.
	runState func(context.Context) (string, error)
	// interval and limit are sshproto.PingInterval and SilenceLimit.
	interval, limit time.Duration

	mu         sync.Mutex
	info       instance.BootInfo // as last written to the boot marker
	lastAnswer time.Time
	lastPing   time.Time
	pinging    bool
	silent     bool
	idlePaused bool          // the host process paused the guest (idlePauser)
	checking   bool          // a runState question is in flight
	wake       chan struct{} // asks the loop to ping now
}

func newMonitor(conn ssh.Conn, inst *instance.Instance, info instance.BootInfo, log *slog.Logger) *monitor {
	now := time.Now()
	return &monitor{conn: conn, inst: inst, info: info, log: log, interval: sshproto.PingInterval, limit: sshproto.SilenceLimit,
		lastAnswer: now, lastPing: now, wake: make(chan struct{}, 1)}
}

// run pings until ctx ends.
func (m *monitor) run(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, m.interval))
	defer tick.Stop()
	prev := time.Now()
	// The guest set its clock at boot to the host's time when the start
	// began plus its own uptime, which misses QEMU's start and the
	// kernel's early boot (a quarter of a second under TCG): check it now
	// rather than one interval after the start.
	m.pingNow()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
			forced = true
		case <-tick.C:
		}
		now := time.Now()
		// The monotonic clock stops while the host sleeps; the wall
		// clock does not.
		if d := now.Round(0).Sub(prev.Round(0)) - now.Sub(prev); d > wallJump || d < -wallJump {
			m.log.Info("host clock jumped; checking the guest's", "by", d.Round(time.Millisecond))
			forced = true
		}
		prev = now
		m.mu.Lock()
		due := !m.pinging && !m.idlePaused && (forced || now.Sub(m.lastPing) >= m.interval)
		if due {
			m.pinging, m.lastPing = true, now
		}
		m.mu.Unlock()
		if due {
			go m.ping(ctx)
		}
		m.updateSilence(now)
		m.checkHypervisor(ctx)
	}
}

// pingNow asks for a ping without waiting for it.
func (m *monitor) pingNow() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *monitor) ping(ctx context.Context) {
	sent := time.Now()
	guest, err := sshproto.Ping(ctx, m.conn)
	got := time.Now()
	m.mu.Lock()
	m.pinging = false
	if err == nil {
		m.lastAnswer = got
	}
	m.mu.Unlock()
	if err != nil {
		return
	}
	m.updateSilence(got)
	rtt := got.Sub(sent)
	if rtt > maxClockRTT {
		// A slow answer (the VM was paused, or the host is busy) cannot
		// measure drift; ask again at once.
		m.pingNow()
		return
	}
	hostAtReply := sent.Round(0).Add(rtt / 2)
	drift := guest.Sub(hostAtReply)
	if drift > -maxDrift && drift < maxDrift {
		return
	}
	if err := m.sendClock(ctx, time.Now().Round(0).Add(rtt/2)); err != nil {
		m.log.Warn("set guest clock refused", "drift", drift.Round(time.Millisecond), "err", err)
		return
	}
	m.log.Info("guest clock corrected", "drift", drift.Round(time.Millisecond))
}

// setIdlePaused records in the boot marker that the host process paused
// the guest (since is when) or resumed it (nil). A paused guest is neither
// pinged nor counted silent; once resumed, its silence counts from then,
// its clock, which stood still while it was paused, is set before this
// returns, and a ping at once measures what is left.
func (m *monitor) setIdlePaused(since *time.Time) {
	m.mu.Lock()
	m.idlePaused = since != nil
	m.info.IdlePausedSince = since
	if since == nil {
		m.lastAnswer = time.Now()
	}
	if err := m.inst.WriteBootInfo(m.info); err != nil {
		m.log.Warn("write boot marker", "err", err)
	}
	m.mu.Unlock()
	if since == nil {
		// Before the use that resumed the guest goes on: what it does
		// there should not see the time the guest stood still.
		m.setClock(resumeClockLimit)
		m.pingNow()
	}
}

// setClock sets the guest's clock to the host's, waiting at most limit for
// the agent to take it. The guest's clock ends up behind by the request's
// one-way trip (milliseconds); the next ping measures and corrects that.
func (m *monitor) setClock(limit time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := m.sendClock(ctx, time.Now()); err != nil {
		m.log.Warn("set the resumed guest's clock", "err", err)
	}
}

// sendClock sets the guest's wall clock to t (sshproto.ReqSetTime) and
// waits for the agent's answer until ctx ends.
func (m *monitor) sendClock(ctx context.Context, t time.Time) error {
	ok, _, err := sshproto.SendRequest(ctx, m.conn, sshproto.ReqSetTime, ssh.Marshal(sshproto.NewClock(t)))
	if err == nil && !ok {
		err = errors.New("the agent refused it")
	}
	return err
}

// updateSilence records a change between answering and silent in the boot
// marker, which is what status and list read.
func (m *monitor) updateSilence(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.idlePaused {
		return
	}
	silent := now.Sub(m.lastAnswer) > m.limit
	if silent == m.silent {
		return
	}
	m.silent = silent
	if silent {
		since := m.lastAnswer
		m.info.AgentSilentSince = &since
		m.log.Warn("agent unresponsive", "silentFor", now.Sub(since).Round(time.Second))
	} else {
		m.info.AgentSilentSince = nil
		m.info.HypervisorState = ""
		m.log.Info("agent answers again")
	}
	if err := m.inst.WriteBootInfo(m.info); err != nil {
		m.log.Warn("write boot marker", "err", err)
	}
}

// checkHypervisor asks, while the agent is silent, whether the hypervisor
// still runs the guest, and records a change in the boot marker.
func (m *monitor) checkHypervisor(ctx context.Context) {
	m.mu.Lock()
	ask := m.runState != nil && m.silent && !m.checking
	if ask {
		m.checking = true
	}
	m.mu.Unlock()
	if !ask {
		return
	}
	go func() {
		qctx, cancel := context.WithTimeout(ctx, stateCheckTimeout)
		state, err := m.runState(qctx)
		cancel()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.checking = false
		if err != nil {
			m.log.Debug("ask the hypervisor for its state", "err", err)
			return
		}
		if state == "running" {
			state = ""
		}
		if !m.silent || state == m.info.HypervisorState {
			return
		}
		m.info.HypervisorState = state
		if state != "" {
			m.log.Warn("the hypervisor does not run the guest", "state", state)
		}
		if err := m.inst.WriteBootInfo(m.info); err != nil {
			m.log.Warn("write boot marker", "err", err)
		}
	}()
}

// Silent reports whether the agent has been silent past the limit.
func (m *monitor) Silent() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Since(m.lastAnswer) > m.limit
}

// admit is the relay's gate for a new operation: refused while the agent is
// silent (with a fresh ping, so that a recovered agent is seen at once).
func (m *monitor) admit() error {
	m.mu.Lock()
	last := m.lastAnswer
	m.mu.Unlock()
	since := time.Since(last)
	if since > 2*time.Second {
		m.pingNow()
	}
	if since > m.limit {
		return fmt.Errorf("the guest agent has not answered for %s; the VM may be hung (see vmbox logs; vmbox stop stops it)", since.Round(time.Second))
	}
	return nil
}
