package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/lifecycle"
)

type startOptions struct {
	cpus      int
	memory    string
	disk      string
	driver    string
	arch      string
	mounts    []string
	mountType string
	idlePause string
	timeout   time.Duration
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
			s, err := o.settings(cmd.Flags().Changed)
			if err != nil {
				return err
			}
			return a.startInstance(cmd.Context(), s, o.timeout)
		},
	}
	addInstanceFlags(c, &o)
	c.Flags().DurationVar(&o.timeout, "timeout", defaultStartTimeout, "how long to wait for the guest to answer")
	return c
}

const defaultStartTimeout = 5 * time.Minute

func addInstanceFlags(c *cobra.Command, o *startOptions) {
	c.Flags().IntVar(&o.cpus, "cpus", instance.DefaultCPUs, "number of virtual CPUs")
	c.Flags().StringVar(&o.memory, "memory", formatMiB(instance.DefaultMemoryMiB), "guest memory (e.g. 2GiB, 4096MiB)")
	c.Flags().StringVar(&o.disk, "disk", fmt.Sprintf("%dGiB", instance.DefaultDiskGiB), "data disk size, allocated sparsely (e.g. 100GiB)")
	c.Flags().StringVar(&o.driver, "driver", "", "hypervisor driver: qemu or vz (default: the best available)")
	c.Flags().StringVar(&o.arch, "arch", runtime.GOARCH, "guest architecture: amd64 or arm64")
	c.Flags().StringVar(&o.mountType, "mount-type", instance.MountTypeAuto, "how shared folders' file contents reach the VM: auto (virtiofs where the hypervisor serves it: vz, or QEMU on Linux as root; else sftp) or sftp (over the VM's SSH channel)")
	c.Flags().StringVar(&o.idlePause, "idle-pause", instance.DefaultIdlePause.String(), "pause the VM once nothing has used it for this long (no command or Docker client connected, no container running); the next use resumes it. 0 never pauses")
	c.Flags().StringArrayVar(&o.mounts, "mount", nil, "share a host folder into the VM at the same path, HOSTDIR[:ro] (repeatable; replaces the instance's earlier --mount folders; \"none\" clears them); your home and temporary directories are always shared")
}

// settings turns the flags the user set into instance settings, so that an
// existing instance is only reconfigured on purpose.
func (o startOptions) settings(changed func(string) bool) (lifecycle.Settings, error) {
	var s lifecycle.Settings
	if changed("cpus") {
		s.CPUs = &o.cpus
	}
	if changed("memory") {
		m, err := parseSize(o.memory, "MiB")
		if err != nil {
			return s, badFlag("invalid --memory %q: %v", o.memory, err)
		}
		mib := int(m >> 20)
		s.MemoryMiB = &mib
	}
	if changed("disk") {
		d, err := parseSize(o.disk, "GiB")
		if err != nil {
			return s, badFlag("invalid --disk %q: %v", o.disk, err)
		}
		gib := int(d >> 30)
		s.DiskGiB = &gib
	}
	if changed("driver") {
		s.Driver = &o.driver
	}
	if changed("arch") {
		s.Arch = &o.arch
	}
	if changed("mount-type") {
		s.MountType = &o.mountType
	}
	if changed("idle-pause") {
		s.IdlePause = &o.idlePause
	}
	if changed("mount") {
		mounts := []instance.Mount{}
		for _, spec := range o.mounts {
			if spec == "none" {
				continue
			}
			m, err := instance.ParseMount(spec)
			if err != nil {
				return s, badFlag("%v", err)
			}
			mounts = append(mounts, m)
		}
		s.Mounts = &mounts
	}
	return s, nil
}

// startInstance creates the instance on first use, applies s, and boots it.
func (a *app) startInstance(ctx context.Context, s lifecycle.Settings, timeout time.Duration) error {
	if a.host != "" {
		return badFlag("start manages a VM instance; it cannot be used with --host")
	}
	m, err := a.manager()
	if err != nil {
		return err
	}
	var mountsBefore []instance.Mount
	mountTypeBefore := instance.MountTypeAuto
	if existing, err := m.Store.Get(a.name); err == nil {
		mountsBefore = existing.Config.Mounts
		if existing.Config.MountType != "" {
			mountTypeBefore = existing.Config.MountType
		}
	}
	inst, created, err := m.Ensure(a.name, s)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(a.stderr, "Created instance %q (%d CPUs, %s memory, %dGiB disk)\n", a.name, inst.Config.CPUs, formatMiB(inst.Config.MemoryMiB), inst.Config.DiskGiB)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := newProgress(a.stderr, fmt.Sprintf("Starting instance %q", a.name))
	defer p.done()
	bi, err := m.Start(ctx, inst, p.update)
	if errors.Is(err, lifecycle.ErrAlreadyRunning) {
		p.done()
		fmt.Fprintf(a.stdout, "instance %q is already running\n", a.name)
		if s.Mounts != nil && !slices.Equal(*s.Mounts, mountsBefore) {
			fmt.Fprintf(a.stderr, "The new --mount folders are saved; they are shared from the next start (vmbox restart)\n")
		}
		if s.MountType != nil && *s.MountType != mountTypeBefore {
			fmt.Fprintf(a.stderr, "The new --mount-type is saved; it takes effect at the next start (vmbox restart)\n")
		}
		a.ensureDockerContext(inst)
		return nil
	}
	if err != nil {
		p.fail()
		return err
	}
	p.finish(readyLine(a.name, bi))
	a.ensureDockerContext(inst)
	return nil
}

func readyLine(name string, bi *instance.BootInfo) string {
	line := fmt.Sprintf("Instance %q is running (%s, %s), ready in %.1fs", name, bi.Driver, bi.Accelerator, bi.Ready.Sub(bi.Started).Seconds())
	if bi.EmulatedBecause != "" {
		line += "\nNote: the VM's CPU is emulated (" + bi.Accelerator + "), which is several times slower: " + bi.EmulatedBecause
	}
	return line
}
