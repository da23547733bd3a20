package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmbox/vmbox/host/instance"
)

// ErrAlreadyRunning is returned (wrapped) by Start for a running instance.
var ErrAlreadyRunning = errors.New("already running")

// HostProcessCommand is the hidden command with which the vmbox binary
// becomes an instance's host process.
const HostProcessCommand = "__hostproc"

// Start boots inst: it spawns the detached host process and returns once
// the agent answers through the instance socket, or with the host process's
// own error when it fails. ctx bounds the whole wait. waiting, when set, is
// called now and then with the time spent so far.
func (m *Manager) Start(ctx context.Context, inst *instance.Instance, waiting func(time.Duration)) (*instance.BootInfo, error) {
	lock, err := startLock(ctx, inst)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if instance.Held(inst.Path(instance.RunLockFile)) {
		return nil, fmt.Errorf("instance %q is %w", inst.Config.Name, ErrAlreadyRunning)
	}
	return m.spawn(ctx, inst, waiting)
}

// startLock takes the lock that serialises start, stop, restart and delete
// of one instance.
func startLock(ctx context.Context, inst *instance.Instance) (*instance.Lock, error) {
	lock, err := instance.WaitLock(ctx, inst.Path(instance.StartLockFile))
	if err != nil {
		return nil, fmt.Errorf("another vmbox command holds instance %q: %w", inst.Config.Name, err)
	}
	return lock, nil
}

// spawn starts the host process; the caller holds the start lock.
func (m *Manager) spawn(ctx context.Context, inst *instance.Instance, waiting func(time.Duration)) (*instance.BootInfo, error) {
	if _, err := NewDriver(inst.Config.Driver, inst.Config.Arch); err != nil {
		return nil, err
	}
	if _, err := FindImage(inst.Config.Arch); err != nil {
		return nil, err
	}
	exe := m.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find vmbox binary: %w", err)
		}
	}
	logFile, err := os.OpenFile(inst.Path(instance.HostLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open host process log: %w", err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command(exe, HostProcessCommand, "--name", inst.Config.Name)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "VMBOX_HOME="+filepath.Dir(inst.Dir))
	detach(cmd)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start host process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("instance %q failed to start: %s", inst.Config.Name, hostLogError(inst, logStart, err))
		case <-ctx.Done():
			cmd.Process.Kill()
			return nil, fmt.Errorf("instance %q did not become ready in time (see %s)", inst.Config.Name, inst.Path(instance.ConsoleLogFile))
		case <-tick.C:
		}
		if waiting != nil {
			waiting(time.Since(started))
		}
		// The host process writes the boot marker once the agent has
		// answered and the socket listens: that is readiness.
		if bi, err := inst.ReadBootInfo(); err == nil && bi.Pid == cmd.Process.Pid {
			cmd.Process.Release()
			return bi, nil
		}
	}
}

// readyPoll is how often Start looks for the boot marker: each look is a
// read of a small file, and a start waits half of it on average past
// readiness.
const readyPoll = 10 * time.Millisecond

// hostLogError extracts the host process's error from its log.
func hostLogError(inst *instance.Instance, from int64, exitErr error) string {
	b, err := os.ReadFile(inst.Path(instance.HostLogFile))
	if err == nil && int64(len(b)) > from {
		lines := strings.Split(strings.TrimSpace(string(b[from:])), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if l := strings.TrimSpace(lines[i]); l != "" {
				return strings.TrimPrefix(l, "vmbox: ")
			}
		}
	}
	return fmt.Sprintf("host process exited: %v", exitErr)
}
