//go:build linux

package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// System is the booted guest. Run returns it once what the first request
// needs is in place; networking finishes in the background (wait for it
// with WaitNetwork), and the data disk is prepared when first waited for
// (WaitDataDisk).
type System struct {
	Config  *vmconfig.Config
	cmdline kernelCmdline
	// Modules loads further kernel modules on demand (overlay, veth,
	// bridge, nf_tables, ...) for later features.
	Modules *ModuleLoader

	timings  *Timings
	bg       context.Context // background steps; cancelled by Close
	bgCancel context.CancelFunc
	logf     func(format string, args ...any)

	netDone chan struct{}
	net     *network
	netErr  error

	diskStart sync.Once
	diskDone  chan struct{}
	disk      *DataDisk
	diskErr   error
}

// Run boots the guest as far as serving needs and returns: kernel file
// systems and cgroup2 are mounted, the hostname and clock are set, and the
// configured modules are loaded (so the network interface or vsock can be
// found). Independent steps run concurrently. Networking continues in the
// background, as does DHCP renewal until Close; a failure there is
// reported by WaitNetwork, not by Run. The data disk waits for its first
// WaitDataDisk, which the agent makes once the host has finished the
// start: an emulated guest boots on one CPU, where probing and mounting
// the disk meanwhile would only delay the agent's answers. ctx bounds only
// the steps Run waits for.
//
// Call it in the agent process for which Init returned true.
func Run(ctx context.Context, cfg *vmconfig.Config) (*System, error) {
	start := time.Now()
	t := &Timings{}
	s := &System{
		Config:   cfg,
		timings:  t,
		logf:     func(f string, a ...any) { fmt.Fprintf(os.Stderr, "vmbox-agent: boot: "+f+"\n", a...) },
		netDone:  make(chan struct{}),
		diskDone: make(chan struct{}),
	}

	step := time.Now()
	if err := mountEarly(); err != nil {
		return nil, err
	}
	t.Add("mount /proc /sys /dev", step)

	cmdline, err := readKernelCmdline()
	if err != nil {
		return nil, err
	}
	s.cmdline = cmdline

	lateErr := make(chan error, 1)
	go func() {
		step := time.Now()
		err := mountLate()
		t.Add("mount /dev/pts /dev/shm /run /tmp cgroup2", step)
		lateErr <- err
	}()

	list, err := readModuleListOrEmpty(vmconfig.ModulesListPath)
	if err != nil {
		return nil, err
	}
	s.Modules = newModuleLoader(list, t)
	modErr := make(chan error, 1)
	go func() {
		step := time.Now()
		err := s.Modules.loadModules(ctx, cfg.Modules...)
		t.Add("modules (boot set)", step)
		modErr <- err
	}()

	step = time.Now()
	var errs []error
	if err := setHostname(cfg.EffectiveHostname()); err != nil {
		errs = append(errs, err)
	}
	if _, err := syncBootClock(cfg.BootTime()); err != nil {
		errs = append(errs, err)
	}
	t.Add("hostname and clock", step)

	errs = append(errs, <-lateErr, <-modErr)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bg, s.bgCancel = bg, cancel
	go s.bootNetwork(bg)
	t.Add("boot (until serving)", start)
	return s, nil
}

func readModuleListOrEmpty(p string) (*moduleList, error) {
	l, err := readModuleList(p)
	if errors.Is(err, os.ErrNotExist) {
		return &moduleList{index: map[string]int{}}, nil
	}
	return l, err
}

func (s *System) bootNetwork(bg context.Context) {
	defer close(s.netDone)
	step := time.Now()
	s.net, s.netErr = setupNetwork(bg, bg, s.Config.Network, s.Config.EffectiveHostname(), "/etc", s.timings, s.logf)
	s.timings.Add("network", step)
	if s.netErr != nil {
		s.logf("%v", s.netErr)
	}
}

// dataDiskTimeout bounds the wait for a required disk and its device node.
const dataDiskTimeout = 10 * time.Second

func (s *System) bootDataDisk(bg context.Context) {
	defer close(s.diskDone)
	ctx, cancel := context.WithTimeout(bg, dataDiskTimeout)
	defer cancel()
	step := time.Now()
	env := diskEnv{
		sysBlock:   "/sys/block",
		devDir:     "/dev",
		mountPoint: vmconfig.DataMountPoint,
		mke2fs:     "/sbin/mke2fs",
		waitDisk:   dataDiskTimeout / 2,
		ensureExt4: func(ctx context.Context) error {
			if hasFilesystem("ext4") {
				return nil
			}
			return s.Modules.EnsureModule(ctx, "ext4")
		},
	}
	if err := s.Modules.EnsureModule(ctx, "virtio_blk"); err != nil {
		// The disk driver may be built in or loaded already under another
		// name; without it the disk simply is not found below.
		if _, listed := s.Modules.list.Lookup("virtio_blk"); listed {
			s.diskErr = err
			s.logf("%v", err)
			return
		}
	}
	s.disk, s.diskErr = prepareDataDisk(ctx, s.Config.DataDisk, env, s.timings)
	s.timings.Add("data disk", step)
	if s.diskErr != nil {
		s.logf("%v", s.diskErr)
	}
}

// WaitNetwork waits until the network is configured (for DHCP: the first
// lease is applied) and returns its state.
func (s *System) WaitNetwork(ctx context.Context) (NetworkState, error) {
	select {
	case <-s.netDone:
	case <-ctx.Done():
		return NetworkState{}, fmt.Errorf("wait for network: %w", ctx.Err())
	}
	if s.netErr != nil {
		return NetworkState{}, s.netErr
	}
	return s.net.State(), nil
}

// startDataDisk starts preparing the data disk (finding, formatting when
// fresh, checking and mounting it) in the background, unless that has
// started already.
func (s *System) startDataDisk() {
	s.diskStart.Do(func() { go s.bootDataDisk(s.bg) })
}

// WaitDataDisk starts preparing the data disk if need be and waits until
// vmconfig.DataMountPoint is mounted (the data disk, or a tmpfs when there
// is none and none is required). The engine must call it before opening
// anything under vmconfig.DataMountPoint.
func (s *System) WaitDataDisk(ctx context.Context) (*DataDisk, error) {
	s.startDataDisk()
	select {
	case <-s.diskDone:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for data disk: %w", ctx.Err())
	}
	return s.disk, s.diskErr
}

// SettleDataDisk waits, within ctx, for a preparation of the data disk that
// has started to end, and returns at once if none has: at shutdown, a
// format must not be cut short, but a disk nobody asked for need not be
// mounted.
func (s *System) SettleDataDisk(ctx context.Context) {
	started := true
	s.diskStart.Do(func() {
		started = false
		s.diskErr = errors.New("the data disk was not mounted: the VM is shutting down")
		close(s.diskDone)
	})
	if !started {
		return
	}
	select {
	case <-s.diskDone:
	case <-ctx.Done():
	}
}

// OnlineCPUs brings the configured number of CPUs online (Config.CPUs;
// all when 0). Call it once the agent is ready.
func (s *System) OnlineCPUs() error {
	step := time.Now()
	err := bringCPUsOnline(s.Config.CPUs)
	s.timings.Add("online CPUs", step)
	return err
}

// Timings are the boot steps' durations so far; background steps add to
// them as they finish.
func (s *System) Timings() *Timings { return s.timings }

// Close stops background work (DHCP renewal). The configuration stays.
func (s *System) Close() error {
	s.bgCancel()
	return nil
}
