package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/guest/boot"
)

// runGuest boots the guest and serves the host until shutdown.
func runGuest(log *slog.Logger) error {
	ctx := context.Background()
	// The kernel starts init with almost no environment; commands the
	// agent runs (shell, mke2fs) are found on the usual PATH.
	os.Setenv("PATH", guestPath)
	os.Setenv("TMPDIR", filepath.Join(vmconfig.DataMountPoint, "tmp"))
	cfg, err := vmconfig.Load(vmconfig.Path)
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(agentProcs(cfg.CPUs))
	hostKey, authorized, err := parseKeys([]byte(cfg.HostKey), []byte(cfg.AuthorizedKey))
	if err != nil {
		return err
	}
	sys, err := boot.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("boot: %w", err)
	}
	defer sys.Close()
	log.Info("booted", "timings", sys.Timings().String())
	shutdown := make(chan struct{})
	var once sync.Once
	a := &Agent{
		Log:      log,
		Shutdown: func() { once.Do(func() { close(shutdown) }) },
		WaitDataDisk: func(ctx context.Context) error {
			if _, err := sys.WaitDataDisk(ctx); err != nil {
				return fmt.Errorf("the data disk (%s) is not mounted: %w", vmconfig.DataMountPoint, err)
			}
			return nil
		},
	}
	// PID 1 forwards shutdown requests (its own signals, the power
	// button) as SIGTERM: shut down as for the host's request.
	sigterm := make(chan os.Signal, 1)
	signal.Notify(sigterm, unix.SIGTERM)
	go func() {
		<-sigterm
		log.Info("SIGTERM")
		a.Shutdown()
	}()
	// The data disk is mounted, and the engine opened, once the host has
	// finished the start (below, a first boot waits for the format):
	// operations that need the engine wait for it; a shell waits for the
	// disk only; version and host folders wait for neither.
	ports := newHostPorts(log, api.DockerSocket)
	folders := newHostFolders(log, sys.Modules.EnsureModule)
	defer folders.Close()
	srv := NewServer(hostKey, authorized, a, log)
	closeEngine, err := a.openGuestEngine(ctx, sys, ports, folders, srv.Booted())
	if err != nil {
		return err
	}
	defer closeEngine()
	engineSettled := a.Containers.(*containerOps).settled()
	a.Trim = NewTrimmer(vmconfig.DataMountPoint, log)
	go a.Trim.Run(ctx)
	if cfg.DataDisk.Fresh {
		// First boot: readiness waits for the format, so that the host
		// may record the disk as in use once the agent answers.
		if _, err := sys.WaitDataDisk(ctx); err != nil {
			log.Error("data disk", "err", err)
		}
	}

	srv.ForwardHost = ports.register
	srv.Shares = folders
	srv.DockerSocket = api.DockerSocket
	srv.Streams = &ports.streams
	go func() {
		l, err := listenHost(ctx, sys, cfg.Agent, cfg.Agent.Port)
		if err == nil {
			err = srv.Serve(ctx, l)
		}
		if err != nil {
			log.Error("serve the host", "transport", cfg.Agent.Transport, "err", err)
		}
	}()
	go func() {
		l, err := listenHost(ctx, sys, cfg.Agent, api.ForwardPort)
		if err == nil {
			err = ports.serve(ctx, l)
		}
		if err != nil {
			log.Error("serve forwarded ports", "transport", cfg.Agent.Transport, "err", err)
		}
	}()
	// Inside the guest, the same protocol on a Unix socket, with the same
	// keys: for debugging and for measuring the host hop.
	if l, err := listenUnix(GuestSocket); err != nil {
		log.Warn("guest socket", "err", err)
	} else {
		go srv.Serve(ctx, l)
	}
	go func() {
		// What the start does not need waits until the host process has
		// finished it: under TCG, onlining a CPU stops the machine for a
		// rendezvous, and the late modules (balloon, power button) would
		// compete with the handshake and the folders' mounts.
		select {
		case <-srv.Booted():
		case <-ctx.Done():
			return
		}
		// The other CPUs come online after the engine has opened and
		// settled: that creates the first cgroups (the warm container
		// helper's), which switch on the kernel's static keys for memory
		// cgroups, and on one CPU that code patching needs no other CPU's
		// cooperation. Under TCG with the host's CPUs
		// contended, a guest locked up (both vCPUs, soft lockup, the
		// agent inside cgroup_mkdir at a patched branch) when the two
		// overlapped.
		wait := time.NewTimer(engineFirstWait)
		select {
		case <-engineSettled:
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return
		}
		wait.Stop()
		if err := sys.OnlineCPUs(); err != nil {
			log.Warn("online CPUs", "err", err)
		}
		// One at a time, so that one the image lacks holds back no other.
		for _, m := range cfg.LateModules {
			if err := sys.Modules.EnsureModule(ctx, m); err != nil {
				log.Warn("late module", "module", m, "err", err)
			}
		}
	}()
	<-shutdown
	log.Info("powering off")
	// Never cut a first format short: an interrupted one leaves the disk
	// unusable until formatted again.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	sys.SettleDataDisk(wctx)
	cancel()
	closeEngine()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return boot.PowerOff(pctx)
}

// engineFirstWait bounds how long the other CPUs wait for the engine to
// open (a first boot formats the data disk first).
const engineFirstWait = 30 * time.Second

// minAgentProcs is the fewest Ps the agent runs with. The agent serves the
// FUSE mounts of host folders, and it starts processes with vfork: until
// a child has exec'd, the parent's thread keeps its P (the clone is a raw
// system call). A child that touches a host folder first (a shell whose
// working directory is one, a command that lives in one) waits for the
// agent's FUSE server, which then needs another P. With a single P (the
// guest boots with one CPU online) that is a deadlock of the whole agent.
const minAgentProcs = 4

// agentProcs is GOMAXPROCS for a guest that will have cpus CPUs online
// (0: all present): at least minAgentProcs, and set once, since the
// runtime counts the CPUs online at start, before the others come up.
func agentProcs(cpus int) int {
	if cpus <= 0 {
		if b, err := os.ReadFile("/sys/devices/system/cpu/present"); err == nil {
			cpus = countCPUList(strings.TrimSpace(string(b)))
		}
	}
	return max(cpus, minAgentProcs)
}

// countCPUList counts the CPUs of a kernel CPU list ("0-3,8").
func countCPUList(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil && b >= a {
			n += b - a + 1
		}
	}
	return n
}

// GuestSocket is where the agent also listens inside the VM.
const GuestSocket = "/run/vmbox/agent.sock"

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	return l, nil
}
