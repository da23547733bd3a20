package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
)

type startOptions struct {
	cpus    int
	memory  string
	disk    string
	driver  string
	arch    string
	timeout time.Duration
}

func (a *app) startCommand() *cobra.Command {
	var o startOptions
	c := &cobra.Command{
		Use:   "start [flags] [CONTAINER...]",
		Short: "Start the VM (creating the instance on first use), or start stopped containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return a.startContainers(cmd.Context(), args)
			}
			return a.startInstance(cmd.Context(), o, cmd.Flags().Changed)
		},
	}
	addInstanceFlags(c, &o)
	c.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the guest to answer")
	return c
}

// defaultStartOptions are start's flag defaults, for starts the user did not
// ask for with flags (vmbox run on a stopped instance).
func defaultStartOptions() startOptions {
	return startOptions{cpus: instance.DefaultCPUs, memory: "2GiB", disk: "100GiB", arch: runtime.GOARCH, timeout: 5 * time.Minute}
}

func addInstanceFlags(c *cobra.Command, o *startOptions) {
	c.Flags().IntVar(&o.cpus, "cpus", instance.DefaultCPUs, "number of virtual CPUs")
	c.Flags().StringVar(&o.memory, "memory", "2GiB", "guest memory (e.g. 2GiB, 4096MiB)")
	c.Flags().StringVar(&o.disk, "disk", "100GiB", "data disk size, allocated sparsely (e.g. 100GiB)")
	c.Flags().StringVar(&o.driver, "driver", "", "hypervisor driver: qemu or vz (default: the best available)")
	c.Flags().StringVar(&o.arch, "arch", runtime.GOARCH, "guest architecture: amd64 or arm64")
}

// instanceConfig turns flags into a configuration. changed reports which
// flags the user set, so that an existing instance is only reconfigured on
// purpose.
func (o startOptions) apply(c *instance.Config, changed func(string) bool, creating bool) error {
	if creating || changed("cpus") {
		c.CPUs = o.cpus
	}
	if creating || changed("memory") {
		m, err := parseSize(o.memory, "MiB")
		if err != nil {
			return &ExitError{Code: 2, Message: fmt.Sprintf("invalid --memory %q: %v", o.memory, err)}
		}
		c.MemoryMiB = int(m >> 20)
	}
	if creating || changed("disk") {
		d, err := parseSize(o.disk, "GiB")
		if err != nil {
			return &ExitError{Code: 2, Message: fmt.Sprintf("invalid --disk %q: %v", o.disk, err)}
		}
		gib := int(d >> 30)
		if !creating && gib < c.DiskGiB {
			return &ExitError{Code: 2, Message: fmt.Sprintf("invalid --disk %s: the data disk is %dGiB and is never shrunk", o.disk, c.DiskGiB)}
		}
		c.DiskGiB = gib
	}
	if creating || changed("driver") {
		c.Driver = o.driver
	}
	if creating || changed("arch") {
		if !creating && o.arch != c.Arch {
			return &ExitError{Code: 2, Message: fmt.Sprintf("invalid --arch %s: instance %q was created for %s; delete it to change", o.arch, c.Name, c.Arch)}
		}
		c.Arch = o.arch
	}
	if err := c.Validate(); err != nil {
		return &ExitError{Code: 2, Message: err.Error()}
	}
	return nil
}

// ensureInstance loads the instance, creating it when it does not exist,
// and applies the flags the user set.
func (a *app) ensureInstance(o startOptions, changed func(string) bool) (*instance.Instance, bool, error) {
	store, err := a.store()
	if err != nil {
		return nil, false, err
	}
	inst, err := store.Get(a.name)
	if errors.Is(err, instance.ErrNotExist) {
		cfg := instance.Config{Name: a.name}
		if err := o.apply(&cfg, changed, true); err != nil {
			return nil, false, err
		}
		if cfg.Driver == "" {
			cfg.Driver = defaultDriver(cfg.Arch)
		}
		if _, err := newDriver(cfg.Driver, cfg.Arch); err != nil {
			return nil, false, err
		}
		inst, err := store.Create(cfg)
		return inst, true, err
	}
	if err != nil {
		return nil, false, err
	}
	before := inst.Config
	if err := o.apply(&inst.Config, changed, false); err != nil {
		return nil, false, err
	}
	if inst.Config != before {
		if err := inst.SaveConfig(); err != nil {
			return nil, false, err
		}
		if err := inst.EnsureDisk(); err != nil {
			return nil, false, err
		}
	}
	return inst, false, nil
}

func (a *app) startInstance(ctx context.Context, o startOptions, changed func(string) bool) error {
	if a.host != "" {
		return &ExitError{Code: 2, Message: "start manages a VM instance; it cannot be used with --host"}
	}
	inst, created, err := a.ensureInstance(o, changed)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	lock, err := instance.WaitLock(lctx, inst.Path(instance.StartLockFile))
	if err != nil {
		return fmt.Errorf("another vmbox command holds instance %q: %w", a.name, err)
	}
	defer lock.Release()
	if instance.Held(inst.Path(instance.RunLockFile)) {
		fmt.Fprintf(a.stdout, "instance %q is already running\n", a.name)
		return nil
	}
	if created {
		fmt.Fprintf(a.stderr, "Created instance %q (%d CPUs, %s memory, %dGiB disk)\n", a.name, inst.Config.CPUs, formatMiB(inst.Config.MemoryMiB), inst.Config.DiskGiB)
	}
	return a.spawnHostProcess(lctx, inst)
}

// spawnHostProcess starts the detached host process and waits until the
// agent answers through its socket, or the process fails.
func (a *app) spawnHostProcess(ctx context.Context, inst *instance.Instance) error {
	if _, err := newDriver(inst.Config.Driver, inst.Config.Arch); err != nil {
		return err
	}
	if _, err := findImage(inst.Config.Arch); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find vmbox binary: %w", err)
	}
	logFile, err := os.OpenFile(inst.Path(instance.HostLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open host process log: %w", err)
	}
	defer logFile.Close()
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command(exe, "__hostproc", "--name", a.name)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "VMBOX_HOME="+storeRoot(inst))
	detach(cmd)
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start host process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	progress := newProgress(a.stderr, fmt.Sprintf("Starting instance %q", a.name))
	defer progress.done()

	keys, err := inst.Keys()
	if err != nil {
		return err
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	socket := inst.Path(instance.SocketFile)
	for {
		select {
		case err := <-exited:
			progress.fail()
			return fmt.Errorf("instance %q failed to start: %s", a.name, hostLogError(inst, logStart, err))
		case <-ctx.Done():
			progress.fail()
			cmd.Process.Kill()
			return fmt.Errorf("instance %q did not become ready in time (see %s)", a.name, inst.Path(instance.ConsoleLogFile))
		case <-tick.C:
		}
		if _, err := os.Stat(inst.Path(instance.BootMarkerFile)); err != nil {
			progress.update(time.Since(started))
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := sshclient.Dial(pctx, socket, keys)
		if err == nil {
			err = c.Call(pctx, api.OpPing, nil, nil)
			c.Close()
		}
		cancel()
		if err == nil {
			cmd.Process.Release()
			accel := ""
			if bi, _ := hostproc.ReadBootInfo(inst); bi != nil {
				accel = fmt.Sprintf(" (%s, %s)", bi.Driver, bi.Accelerator)
			}
			progress.finish(fmt.Sprintf("Instance %q is running%s, ready in %.1fs", a.name, accel, time.Since(started).Seconds()))
			return nil
		}
	}
}

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
