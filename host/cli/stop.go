package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
)

func (a *app) stopCommand() *cobra.Command {
	var timeout time.Duration
	var containerTimeout int
	c := &cobra.Command{
		Use:   "stop [flags] [CONTAINER...]",
		Short: "Stop the VM (gracefully through the agent, then forcibly), or stop containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return a.stopContainers(cmd.Context(), args, containerTimeout)
			}
			inst, err := a.instance()
			if err != nil {
				return err
			}
			lock, err := instance.WaitLock(cmd.Context(), inst.Path(instance.StartLockFile))
			if err != nil {
				return err
			}
			defer lock.Release()
			stopped, err := a.stopInstance(cmd.Context(), inst, timeout)
			if err != nil {
				return err
			}
			if stopped {
				fmt.Fprintf(a.stdout, "Stopped instance %q\n", a.name)
			} else {
				fmt.Fprintf(a.stdout, "instance %q is not running\n", a.name)
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "VM: how long to wait for a graceful shutdown before forcing it")
	c.Flags().IntVarP(&containerTimeout, "time", "t", -1, "containers: seconds to wait before killing (default 10)")
	return c
}

// stopInstance stops a running instance and reports whether it was running.
// The caller holds the start lock.
func (a *app) stopInstance(ctx context.Context, inst *instance.Instance, timeout time.Duration) (bool, error) {
	runLock := inst.Path(instance.RunLockFile)
	if !instance.Held(runLock) {
		return false, nil
	}
	boot, _ := hostproc.ReadBootInfo(inst)
	hostPid := readPid(inst.Path(instance.PidFile))
	if keys, err := inst.Keys(); err == nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := sshclient.Dial(cctx, inst.Path(instance.SocketFile), keys)
		if err == nil {
			err = c.Call(cctx, api.OpShutdown, nil, nil)
			c.Close()
			if err != nil && !errors.Is(err, sshclient.ErrConnectionLost) {
				fmt.Fprintf(a.stderr, "vmbox: graceful shutdown failed (%v); forcing\n", firstLine(err.Error()))
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
	fmt.Fprintf(a.stderr, "vmbox: instance %q did not stop within %s; killing it\n", a.name, timeout)
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
		return true, fmt.Errorf("instance %q could not be stopped: %w", a.name, err)
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
