// Package hostproc is the per-instance host process: the detached process
// (the vmbox binary in a hidden mode) that boots the VM through a driver,
// holds the one SSH connection to the guest agent, relays CLI invocations
// onto it through a Unix socket in the instance directory, and shuts the VM
// down when asked or when it dies.
package hostproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
	"github.com/vmbox/vmbox/internal/cpio"
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

// BootInfo is written to the instance directory once the agent is ready.
type BootInfo struct {
	Pid           int       `json:"pid"`
	HypervisorPid int       `json:"hypervisorPid,omitempty"`
	Driver        string    `json:"driver"`
	Accelerator   string    `json:"accelerator"`
	Started       time.Time `json:"started"`
	Ready         time.Time `json:"ready"`
}

// ReadBootInfo reads the boot marker of a running instance.
func ReadBootInfo(inst *instance.Instance) (*BootInfo, error) {
	b, err := os.ReadFile(inst.Path(instance.BootMarkerFile))
	if err != nil {
		return nil, err
	}
	var bi BootInfo
	if err := json.Unmarshal(b, &bi); err != nil {
		return nil, fmt.Errorf("corrupt boot marker: %w", err)
	}
	return &bi, nil
}

// Run boots the instance and serves until the VM stops or ctx is cancelled
// (then it shuts the guest down gracefully, and forcefully after
// StopTimeout). It returns nil after a clean stop.
func Run(ctx context.Context, o Options) (err error) {
	inst, log := o.Instance, o.Log
	if o.BootTimeout == 0 {
		o.BootTimeout = 5 * time.Minute
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 30 * time.Second
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
	}
	log.Info("starting VM", "driver", o.Driver.Name(), "cpus", spec.CPUs, "memoryMiB", spec.MemoryMiB)
	vm, err := o.Driver.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("start VM: %w", err)
	}
	vmDone := make(chan error, 1)
	go func() { vmDone <- vm.Wait() }()
	log.Info("hypervisor running", "pid", vm.Pid(), "accelerator", vm.Accelerator())

	bctx, cancel := context.WithTimeout(ctx, o.BootTimeout)
	agent, err := connectAgent(bctx, vm, keys, vmDone)
	cancel()
	if err != nil {
		vm.Kill()
		<-vmDone
		return fmt.Errorf("guest agent did not answer: %w (see %s)", err, spec.Console)
	}
	defer agent.Close()

	os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		vm.Kill()
		<-vmDone
		return fmt.Errorf("listen on %s: %w", socket, err)
	}
	defer ln.Close()
	relay := NewRelay(keys.Host, keys.ClientPublic, agent.SSH())
	rctx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	go relay.Serve(rctx, ln)

	info := BootInfo{Pid: os.Getpid(), HypervisorPid: vm.Pid(), Driver: o.Driver.Name(), Accelerator: vm.Accelerator(), Started: started, Ready: time.Now()}
	b, _ := json.Marshal(info)
	if err := instance.WriteFileAtomic(inst.Path(instance.BootMarkerFile), b, 0o600); err != nil {
		log.Warn("write boot marker", "err", err)
	}
	log.Info("agent ready", "boot", time.Since(started).Round(time.Millisecond))
	if !inst.Config.DiskInUse {
		inst.Config.DiskInUse = true
		if err := inst.SaveConfig(); err != nil {
			log.Warn("record data disk in use", "err", err)
		}
	}

	agentGone := make(chan error, 1)
	go func() { agentGone <- agent.Wait() }()
	select {
	case err := <-vmDone:
		log.Info("VM exited", "err", err)
		return nil
	case err := <-agentGone:
		// The agent is PID 1: without it the guest panics and QEMU exits.
		log.Warn("connection to agent lost", "err", err)
		select {
		case <-vmDone:
		case <-time.After(5 * time.Second):
			vm.Kill()
			<-vmDone
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down guest")
	sctx, cancel := context.WithTimeout(context.Background(), o.StopTimeout)
	defer cancel()
	if err := agent.Call(sctx, api.OpShutdown, nil, nil); err != nil && !errors.Is(err, sshclient.ErrConnectionLost) {
		log.Warn("graceful shutdown request failed", "err", err)
	}
	select {
	case <-vmDone:
		log.Info("VM stopped")
	case <-sctx.Done():
		log.Warn("guest did not stop in time; killing it", "timeout", o.StopTimeout)
		vm.Kill()
		<-vmDone
	}
	return nil
}

// connectAgent dials the agent until it answers the SSH handshake and a ping.
func connectAgent(ctx context.Context, vm driver.VM, keys *instance.Keys, vmDone <-chan error) (*sshclient.Client, error) {
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
		c, err := sshclient.New(conn, keys)
		if err != nil {
			conn.Close()
			res <- result{err: err}
			return
		}
		if err := c.Call(ctx, api.OpPing, nil, nil); err != nil {
			c.Close()
			res <- result{err: err}
			return
		}
		res <- result{c: c}
	}()
	select {
	case r := <-res:
		return r.c, r.err
	case err := <-vmDone:
		if err == nil {
			err = errors.New("exited")
		}
		return nil, fmt.Errorf("VM stopped while booting: %v", err)
	}
}

// WriteInstanceInitrd writes the per-instance initramfs that the guest's
// base image is booted with: the agent's configuration, including the keys
// that let host and guest trust each other without a first-use prompt.
func WriteInstanceInitrd(path string, inst *instance.Instance, keys *instance.Keys, drv driver.Driver, now time.Time) error {
	cfg := vmconfig.Config{
		Version:          vmconfig.Version,
		Name:             inst.Config.Name,
		Hostname:         "vmbox-" + inst.Config.Name,
		AuthorizedKey:    string(bytes.TrimSpace(keys.AuthorizedKey)),
		HostKey:          string(keys.HostKeyPEM),
		BootTimeUnixNano: now.UnixNano(),
		Network:          drv.GuestNetwork(),
		DataDisk:         vmconfig.DataDisk{Required: true, Fresh: !inst.Config.DiskInUse},
		Agent:            drv.GuestAgent(),
		Modules:          drv.GuestModules(inst.Config.Arch),
		LateModules:      drv.GuestLateModules(inst.Config.Arch),
		CPUs:             inst.Config.CPUs,
	}
	b, err := InstanceInitrd(cfg)
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(path, b, 0o600)
}

// InstanceInitrd encodes cfg as the newc archive Linux unpacks over the
// base initramfs, with the document at vmconfig.Path.
func InstanceInitrd(cfg vmconfig.Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("instance configuration: %w", err)
	}
	doc, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode instance configuration: %w", err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, d := range []string{"etc", "etc/vmbox"} {
		if err := w.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := w.File(vmconfig.Path[1:], 0o600, doc); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
