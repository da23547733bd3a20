package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
)

// Stop stops a running instance and reports whether it was running: the
// agent's graceful shutdown within timeout, then the processes are killed.
// log receives what the user should know about a forced stop.
func (m *Manager) Stop(ctx context.Context, inst *instance.Instance, timeout time.Duration, log *slog.Logger) (bool, error) {
	lock, err := startLock(ctx, inst)
	if err != nil {
		return false, err
	}
	defer lock.Release()
	return m.stop(ctx, inst, timeout, log)
}

// Restart stops inst if it runs, then starts it.
func (m *Manager) Restart(ctx context.Context, inst *instance.Instance, stopTimeout time.Duration, log *slog.Logger, waiting func(time.Duration)) (*instance.BootInfo, error) {
	lock, err := startLock(ctx, inst)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if _, err := m.stop(ctx, inst, stopTimeout, log); err != nil {
		return nil, err
	}
	return m.spawn(ctx, inst, waiting)
}

// Delete stops inst if it runs and removes everything of it, data disk
// included.
func (m *Manager) Delete(ctx context.Context, inst *instance.Instance, stopTimeout time.Duration, log *slog.Logger) error {
	lock, err := startLock(ctx, inst)
	if err != nil {
		return err
	}
	defer lock.Release()
	if _, err := m.stop(ctx, inst, stopTimeout, log); err != nil {
		return err
	}
	return inst.Delete()
}

// stop does Stop's work; the caller holds the start lock. It asks the host
// process to stop the VM (which escalates from the guest's own shutdown to
// killing the hypervisor, see hostproc.EscalationLimit) and, should the host
// process itself not end in time, kills it and the hypervisor: it returns
// within timeout+EscalationLimit+1s in every case.
func (m *Manager) stop(ctx context.Context, inst *instance.Instance, timeout time.Duration, log *slog.Logger) (bool, error) {
	runLock := inst.Path(instance.RunLockFile)
	if !instance.Held(runLock) {
		return false, nil
	}
	deadline := time.Now().Add(timeout + hostproc.EscalationLimit + 500*time.Millisecond)
	boot, _ := inst.ReadBootInfo()
	hostPid := readPid(inst.Path(instance.PidFile))
	if err := requestStop(ctx, inst, timeout, deadline); err != nil {
		log.Warn("the host process did not take the stop request; killing it", "err", firstLine(err.Error()))
		deadline = time.Now()
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if l, err := instance.WaitLock(wctx, runLock); err == nil {
		l.Release()
		return true, nil
	}
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	log.Warn(fmt.Sprintf("instance %q did not stop in time; killing it", inst.Config.Name))
	if boot != nil && boot.HypervisorPid > 0 {
		killPid(boot.HypervisorPid)
	}
	if hostPid > 0 {
		killPid(hostPid)
	}
	kctx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	l, err := instance.WaitLock(kctx, runLock)
	if err != nil {
		return true, fmt.Errorf("instance %q could not be stopped: %w", inst.Config.Name, err)
	}
	l.Release()
	return true, nil
}

// requestStop sends sshproto.ReqStop to the host process through its socket.
func requestStop(ctx context.Context, inst *instance.Instance, timeout time.Duration, deadline time.Time) error {
	keys, err := inst.Keys()
	if err != nil {
		return err
	}
	// The host process answers at once, whatever the guest does; a short
	// bound keeps a hung host process from eating the guest's time.
	cctx, cancel := context.WithTimeout(ctx, min(2*time.Second, time.Until(deadline)))
	defer cancel()
	c, err := sshclient.Dial(cctx, inst.Path(instance.SocketFile), keys)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Request(cctx, sshproto.ReqStop, sshproto.StopRequest{TimeoutMillis: uint64(timeout.Milliseconds())})
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func killPid(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
