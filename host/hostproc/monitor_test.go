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
	skew      time.Duration
	setTo     atomic.Int64
}

func (p *pingServer) serve(reqs <-chan *ssh.Request) {
	for r := range reqs {
		switch r.Type {
		case sshproto.ReqPing:
			// A frozen agent answers once it thaws, in order.
			for !p.answering.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			r.Reply(true, ssh.Marshal(sshproto.NewClock(time.Now().Add(p.skew))))
		case sshproto.ReqSetTime:
			var c sshproto.Clock
			ssh.Unmarshal(r.Payload, &c)
			p.setTo.Store(int64(c.UnixNano))
			p.skew = 0
			r.Reply(true, nil)
		default:
			r.Reply(false, nil)
		}
	}
}

func monitored(t *testing.T, p *pingServer) (*monitor, *instance.Instance) {
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
	m.interval, m.limit = 100*time.Millisecond, 600*time.Millisecond
	go m.run(ctx)
	return m, inst
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
	m, inst := monitored(t, p)
	silentSince := func() *time.Time {
		bi, err := inst.ReadBootInfo()
		if err != nil {
			t.Fatal(err)
		}
		return bi.AgentSilentSince
	}
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

func TestMonitorCorrectsClock(t *testing.T) {
	p := &pingServer{skew: -3 * time.Second}
	p.answering.Store(true)
	monitored(t, p)
	waitFor(t, "guest clock set", func() bool { return p.setTo.Load() != 0 })
	if d := time.Since(time.Unix(0, p.setTo.Load())); d < -time.Second || d > time.Second {
		t.Fatalf("guest clock set %s away from the host's", d)
	}
}
