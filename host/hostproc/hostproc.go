// Package hostproc is the per-instance host process: the detached process
// (the vmbox binary in a hidden mode) that boots the VM through a driver,
// holds the one SSH connection to the guest agent, relays CLI invocations
// onto it through a Unix socket in the instance directory, relays Docker
// API clients to the guest's Docker socket through another (docker.sock; a
// named pipe on Windows), and shuts the VM down when asked or when it dies.
package hostproc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/sshproto"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
	"github.com/vmbox/vmbox/internal/portfwd"
)

// Options configure one run of the host process.
type Options struct {
	Instance *instance.Instance
	Driver   driver.Driver
	// ImageDir holds the guest image: "kernel" and "initrd.img".
	ImageDir string
	Log      *slog.Logger
	// BootTimeout bounds the wait for the agent to answer.
	BootTimeout time.Duration
	// StopTimeout bounds a graceful shutdown before the VM is killed.
	StopTimeout time.Duration
}

// Run boots the instance and serves until the VM stops, or until ctx ends
// or a client asks for a stop (sshproto.ReqStop); then it shuts the VM down
// by escalation (see shutdown) and returns nil once it has exited.
func Run(ctx context.Context, o Options) (err error) {
	inst, log := o.Instance, o.Log
	if o.BootTimeout == 0 {
		o.BootTimeout = 5 * time.Minute
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	// A status probe may hold the lock for an instant; wait briefly.
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	lock, err := instance.WaitLock(lctx, inst.Path(instance.RunLockFile))
	cancel()
	if err != nil {
		return fmt.Errorf("instance %q is already running", inst.Config.Name)
	}
	defer lock.Release()
	socket := inst.Path(instance.SocketFile)
	cleanup := func() {
		os.Remove(socket)
		os.Remove(inst.Path(instance.BootMarkerFile))
		os.Remove(inst.Path(instance.PidFile))
	}
	cleanup() // leftovers of a killed predecessor
	defer cleanup()
	if err := instance.WriteFileAtomic(inst.Path(instance.PidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	// Before the VM boots, so that a path taken by something else fails
	// the start at once; clients that connect while it boots wait in the
	// backlog until the agent answers.
	dockerLn, err := listenDocker(ctx, inst)
	if err != nil {
		return fmt.Errorf("serve the Docker API: %w", err)
	}
	defer dockerLn.Close()

	keys, err := inst.Keys()
	if err != nil {
		return err
	}
	started := time.Now()
	instanceInitrd := inst.Path(instance.InstanceCPIO)
	if err := WriteInstanceInitrd(instanceInitrd, inst, keys, o.Driver, started); err != nil {
		return err
	}
	spec := driver.Spec{
		Name:      inst.Config.Name,
		Dir:       inst.Dir,
		Arch:      inst.Config.Arch,
		CPUs:      inst.Config.CPUs,
		MemoryMiB: inst.Config.MemoryMiB,
		Kernel:    filepath.Join(o.ImageDir, "kernel"),
		Initrds:   []string{filepath.Join(o.ImageDir, "initrd.img"), instanceInitrd},
		DataDisk:  inst.Path(instance.DataDiskFile),
		Console:   inst.Path(instance.ConsoleLogFile),
		// For debugging a guest: e.g. loglevel=7 shows the backtraces of
		// soft lockups and RCU stalls that "quiet" hides.
		Cmdline: strings.Fields(os.Getenv("VMBOX_KERNEL_ARGS")),
	}
	shares := inst.Config.Shares()
	if inst.Config.MountType != instance.MountTypeSFTP {
		for i, sh := range shares {
			spec.Folders = append(spec.Folders, driver.Folder{Tag: folderTag(i), HostPath: sh.HostPath, ReadOnly: sh.ReadOnly})
		}
	}
	log.Info("starting VM", "driver", o.Driver.Name(), "cpus", spec.CPUs, "memoryMiB", spec.MemoryMiB)
	vm, err := o.Driver.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("start VM: %w", err)
	}
	exited := make(chan struct{})
	var vmErr error
	go func() {
		vmErr = vm.Wait()
		close(exited)
	}()
	log.Info("hypervisor running", "pid", vm.Pid(), "accelerator", vm.Accelerator())
	emulated := ""
	if e, ok := vm.(driver.EmulationExplainer); ok {
		emulated = e.EmulatedBecause()
	}
	if emulated != "" {
		log.Warn("the guest's CPU is emulated, which is several times slower", "because", emulated)
	}

	published, err := newPorts(vm, log)
	if err != nil {
		vm.Kill()
		<-exited
		return err
	}
	defer published.close()
	bctx, cancel := context.WithTimeout(ctx, o.BootTimeout)
	agent, err := connectAgent(bctx, vm, keys, exited, published.serve)
	cancel()
	if err != nil {
		vm.Kill()
		<-exited
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while booting")
		}
		return fmt.Errorf("guest agent did not answer: %w (see %s)", err, spec.Console)
	}
	defer agent.Close()
	log.Info("agent connected", "after", time.Since(started).Round(time.Millisecond))
	// Before the CLI can reach the agent: a container started at once
	// publishes its ports through this registration.
	gatewayOK := true
	if err := published.register(agent.SSH()); err != nil {
		log.Warn("published ports will not work", "err", err)
		gatewayOK = false
	}
	// Before the CLI can reach the agent: a container started at once may
	// bind a host folder.
	sctx, stopShares := context.WithCancel(context.Background())
	defer stopShares()
	shareStart := time.Now()
	if ex, ok := vm.(driver.FolderExporter); ok {
		tagShares(shares, ex.ExportedFolders())
	}
	shared := mountShares(sctx, agent.SSH(), shares, log)
	log.Info("host folders shared", "took", time.Since(shareStart).Round(time.Millisecond))
	// The agent held back the boot work the start does not need.
	if _, _, err := agent.SSH().SendRequest(sshproto.ReqBooted, false, nil); err != nil {
		log.Warn("tell the agent the start is done", "err", err)
	}

	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		vm.Kill()
		<-exited
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	defer ln.Close()

	info := instance.BootInfo{Pid: os.Getpid(), HypervisorPid: vm.Pid(), Driver: o.Driver.Name(), Accelerator: vm.Accelerator(), EmulatedBecause: emulated, Started: started, Ready: time.Now(), Shares: shared}
	if lg, ok := vm.(driver.LoopbackGateway); ok && gatewayOK {
		info.Gateway = &instance.Gateway{Addr: lg.GatewayAddr(), Token: hex.EncodeToString(published.token)}
	}
	mctx, stopMonitor := context.WithCancel(context.Background())
	defer stopMonitor()
	mon := newMonitor(agent.SSH(), inst, info, log)
	if r, ok := vm.(driver.RunStateReporter); ok {
		mon.runState = r.RunState
	}
	stopReqs := make(chan time.Duration, 4)
	relay := NewRelay(keys.Host, keys.ClientPublic, agent.SSH())
	relay.Admit = mon.admit
	relay.Stats = hostStats
	relay.Stop = func(timeout time.Duration) {
		select {
		case stopReqs <- timeout:
		default: // a stop is already queued
		}
	}
	relay.Log = log
	if _, loopback := vm.(driver.LoopbackGateway); loopback && gatewayOK {
		// Elsewhere (vz's vsock) the gateway's connections cannot
		// half-close: each Docker connection would try one in vain.
		relay.Gateway = &portfwd.StreamDialer{Dial: vm.DialForward, Token: published.token}
	}
	var pauser *idlePauser
	idleAfter := inst.Config.IdlePauseAfter()
	if pv, ok := vm.(driver.Pauser); ok && idleAfter > 0 {
		pauser = newIdlePauser(pv, idleAfter, settleAgent(agent), mon.setIdlePaused, log)
		relay.Use = pauser.use
		go pauser.run(mctx)
	}
	go relay.Serve(mctx, ln)
	go relay.ServeDocker(mctx, dockerLn)
	if err := inst.WriteBootInfo(info); err != nil {
		log.Warn("write boot marker", "err", err)
	}
	go mon.run(mctx)
	log.Info("agent ready", "boot", time.Since(started).Round(time.Millisecond))
	if !inst.Config.DiskInUse {
		inst.Config.DiskInUse = true
		if err := inst.SaveConfig(); err != nil {
			log.Warn("record data disk in use", "err", err)
		}
	}

	agentGone := make(chan error, 1)
	go func() { agentGone <- agent.Wait() }()
	var timeout time.Duration
	select {
	case <-exited:
		log.Info("VM exited", "err", vmErr)
		return nil
	case err := <-agentGone:
		// The agent is PID 1's child: without it the guest powers off.
		log.Warn("connection to agent lost", "err", err)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			vm.Kill()
			<-exited
		}
		return nil
	case <-ctx.Done():
		timeout = o.StopTimeout
		log.Info("stopping VM on signal", "timeout", timeout)
	case timeout = <-stopReqs:
		log.Info("stopping VM on request", "timeout", timeout)
	}
	if pauser != nil {
		pauser.close(context.Background())
	}
	sd := &shutdown{vm: vm, exited: exited, agent: agent, silent: mon.Silent, log: log, hurry: stopReqs}
	sd.run(timeout)
	return nil
}

// settleAgent asks the agent whether any container runs and, when none
// does, has the guest write out what it holds dirty: a paused guest does
// not, and a host that loses power while it is paused would lose it.
func settleAgent(agent *sshclient.Client) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		var running []api.ContainerSummary
		if err := agent.Call(ctx, api.OpPs, api.PsArgs{}, &running); err != nil {
			return false, fmt.Errorf("list running containers: %w", err)
		}
		if len(running) > 0 {
			return true, nil
		}
		if err := agent.Call(ctx, api.OpShell, api.ShellArgs{Argv: []string{"sync"}}, nil); err != nil {
			return false, fmt.Errorf("sync the guest's file systems: %w", err)
		}
		return false, nil
	}
}

// connectAgent dials the agent until it answers the SSH handshake and a ping.
// serve answers the agent's own requests (published ports).
func connectAgent(ctx context.Context, vm driver.VM, keys *instance.Keys, exited <-chan struct{}, serve sshclient.GlobalRequestHandler) (*sshclient.Client, error) {
	type result struct {
		c   *sshclient.Client
		err error
	}
	res := make(chan result, 1)
	go func() {
		conn, err := vm.DialAgent(ctx)
		if err != nil {
			res <- result{err: err}
			return
		}
		var ciphers []string
		if vm.Accelerator() == "tcg" {
			ciphers = sshclient.EmulatedCPUCiphers()
		}
		c, err := sshclient.NewServing(conn, keys, ciphers, serve)
		if err != nil {
			conn.Close()
			res <- result{err: err}
			return
		}
		c.KeepThroughSilence()
		// One global-request round trip proves the agent serves; an
		// operation's channel would cost several.
		if _, err := sshproto.Ping(ctx, c.SSH()); err != nil {
			c.Close()
			res <- result{err: err}
			return
		}
		res <- result{c: c}
	}()
	select {
	case r := <-res:
		return r.c, r.err
	case <-exited:
		if err := vm.Wait(); err != nil {
			return nil, fmt.Errorf("VM stopped while booting: %w", err)
		}
		return nil, errors.New("VM shut down while booting")
	}
}
