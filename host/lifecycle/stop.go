package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmbox/vmbox/guest/api"
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

// stop does Stop's work; the caller holds the start lock.
func (m *Manager) stop(ctx context.Context, inst *instance.Instance, timeout time.Duration, log *slog.Logger) (bool, error) {
	runLock := inst.Path(instance.RunLockFile)
	if !instance.Held(runLock) {
		return false, nil
	}
	boot, _ := inst.ReadBootInfo()
	hostPid := readPid(inst.Path(instance.PidFile))
	if keys, err := inst.Keys(); err == nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := sshclient.Dial(cctx, inst.Path(instance.SocketFile), keys)
		if err == nil {
			err = c.Call(cctx, api.OpShutdown, nil, nil)
			c.Close()
			if err != nil && !errors.Is(err, sshclient.ErrConnectionLost) {
				log.Warn("graceful shutdown failed; forcing", "err", firstLine(err.Error()))
			}
		}
		cancel()
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if l, err := instance.WaitLock(wctx, runLock); err == nil {
		l.Release()
		return true, nil
	}
	log.Warn(fmt.Sprintf("instance %q did not stop within %s; killing it", inst.Config.Name, timeout))
	if boot != nil && boot.HypervisorPid > 0 {
		killPid(boot.HypervisorPid)
	}
	if hostPid > 0 {
		killPid(hostPid)
	}
	kctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	l, err := instance.WaitLock(kctx, runLock)
	if err != nil {
		return true, fmt.Errorf("instance %q could not be stopped: %w", inst.Config.Name, err)
	}
	l.Release()
	return true, nil
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
