//go:build linux

package boot

// PID 1 and the reaper.
//
// Why PID 1 is a separate, tiny process. Every orphan in the VM is
// reparented to PID 1, which must reap it. If the agent itself were PID 1,
// a reaper loop calling wait4(-1) would race with os/exec's wait4(pid) for
// the agent's own children and steal their exit statuses. Reaping "only
// untracked pids" does not fix that: a child the agent just forked is
// indistinguishable from an orphan (both have ppid 1) until the code that
// forked it has registered the pid, and it can exit before that; closing
// the window needs every fork site in every package (os/exec, the engine's
// clone of container init, mke2fs, ...) to hold a lock across Start and
// registration, and one forgotten site silently corrupts exit codes.
//
// So Init splits the roles. PID 1 mounts /proc and /dev, starts the agent
// (this same executable) as its only child, and then only calls
// wait4(-1, WNOHANG) on SIGCHLD. That is race-free by construction: PID 1
// never waits for a specific pid, and its children are the agent (whose
// exit it wants) and orphans (whose statuses nobody else can want, since
// their parent is gone). The agent is an ordinary process: os/exec and the
// engine own their children exactly as in local mode on a Linux host. If
// the engine needs the exit status of a process that outlives its parent
// (a double fork), it makes the agent a child subreaper
// (PR_SET_CHILD_SUBREAPER), just as it must on a host. The price is one
// more exec of a static binary at boot.

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// agentEnv marks the agent process started by Init. Init's child removes
// it from its environment so that nothing it starts inherits it.
const agentEnv = "VMBOX_GUEST_AGENT"

// agentStopGrace is how long PID 1 lets the agent shut down after
// forwarding it a shutdown signal before killing it.
const agentStopGrace = 30 * time.Second

// Init must be the first call in the agent's main.
//
// As PID 1 it never returns: it mounts /proc, /sys and /dev, makes sure
// stdio is the console, starts this executable again as its child (the
// agent), forwards SIGTERM, SIGINT (Ctrl-Alt-Del), SIGPWR and power-button
// presses (KEY_POWER on /dev/input/event*) to it as SIGTERM, reaps
// every process reparented to it, and when the agent exits powers the VM
// off (after a console shell first when vmbox.debug is set).
//
// In the agent process Init started it returns true: the caller is the
// guest agent and should call Run. Anywhere else (local mode on a Linux
// host) it returns false and does nothing.
func Init() (guest bool) {
	if os.Getpid() == 1 {
		runInit()
		panic("unreachable")
	}
	if os.Getenv(agentEnv) == "" {
		return false
	}
	os.Unsetenv(agentEnv)
	return inGuest()
}

// inGuest reports whether this process is PID 1 or the agent that PID 1
// (this same executable) started. Destructive operations (PowerOff,
// setSystemClock, bringCPUsOnline) check it so that local mode can never reach them.
func inGuest() bool {
	if os.Getpid() == 1 {
		return true
	}
	if os.Getppid() != 1 {
		return false
	}
	var self, init unix.Stat_t
	if unix.Stat("/proc/self/exe", &self) != nil || unix.Stat("/proc/1/exe", &init) != nil {
		return false
	}
	return self.Dev == init.Dev && self.Ino == init.Ino
}

// errNotGuest is returned by operations that only make sense in the VM.
var errNotGuest = errors.New("not running as the vmbox guest (PID 1 or its agent)")

func consolef(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmbox-init: "+format+"\n", args...)
}

func runInit() {
	// Catch every signal whose Go default would end the process: PID 1
	// exiting panics the kernel.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, initSignals...)

	if err := leaveRootfs(); err != nil {
		consolef("%v (containers will fail to pivot_root)", err)
	}
	if err := mountEarly(); err != nil {
		consolef("%v", err)
	}
	fixStdio()
	// The hypervisor's power button (QMP system_powerdown, vz RequestStop)
	// shuts down as SIGPWR does. The watcher only reads input devices, so
	// it shares nothing with the reaper below.
	go func() {
		err := watchPowerButton("/dev/input", func() {
			consolef("power button pressed")
			select {
			case sigs <- unix.SIGPWR:
			default: // a full queue already holds a shutdown signal or reaping
			}
		}, consolef)
		consolef("%v", err)
	}()
	// Ctrl-Alt-Del (e.g. QEMU's sendkey) then arrives as SIGINT, which is
	// forwarded to the agent for a clean shutdown instead of an instant reboot.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		consolef("disable ctrl-alt-del: %v", err)
	}
	cmdline, err := readKernelCmdline()
	if err != nil {
		consolef("%v", err)
	}
	sup := &supervisor{
		sigs:  sigs,
		start: startAgent,
		done:  func() { initShutdown(cmdline) },
		grace: agentStopGrace,
	}
	if cmdline.Debug() {
		sup.shell = startShell
	}
	sup.run()
	initShutdown(cmdline)
}

// initSignals are the signals PID 1 handles itself.
var initSignals = []os.Signal{unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGPWR, unix.SIGHUP,
	unix.SIGQUIT, unix.SIGABRT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGSTKFLT, unix.SIGSYS, unix.SIGTRAP}

// supervisor is PID 1's loop: it starts the agent, reaps every child, and
// calls done when the agent (or the debug shell that follows it) is gone.
type supervisor struct {
	sigs  <-chan os.Signal
	start func() (int, error) // starts the agent
	shell func() (int, error) // starts a debug shell after the agent; nil for none
	done  func()              // ends the VM; PID 1's never returns
	grace time.Duration       // after a forwarded shutdown signal, before SIGKILL
}

// run returns after calling done (which, in PID 1, does not return).
func (s *supervisor) run() {
	agent, err := s.start()
	if err != nil {
		consolef("start agent: %v", err)
		s.done()
		return
	}
	shell := 0
	var killTimer <-chan time.Time
	for {
		select {
		case <-killTimer:
			killTimer = nil
			if agent != 0 {
				consolef("agent did not stop within %s; killing it", s.grace)
				_ = unix.Kill(agent, unix.SIGKILL)
			}
		case sig := <-s.sigs:
			switch sig {
			case unix.SIGCHLD:
				for _, ex := range reapAll() {
					switch ex.pid {
					case agent:
						consolef("agent exited: %s", ex.status)
						agent = 0
						if s.shell != nil {
							if shell, err = s.shell(); err != nil {
								consolef("debug shell: %v", err)
							}
						}
						if shell == 0 {
							s.done()
							return
						}
					case shell:
						s.done()
						return
					}
				}
			case unix.SIGTERM, unix.SIGINT, unix.SIGPWR:
				if agent != 0 {
					_ = unix.Kill(agent, unix.SIGTERM)
					if killTimer == nil {
						killTimer = time.After(s.grace)
					}
				}
			}
		}
	}
}

// fixStdio points any of fds 0-2 that is closed at /dev/console, so a
// kernel that found no console before /dev existed still leaves logs.
func fixStdio() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
			continue
		}
		c, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return
		}
		if c != fd {
			_ = unix.Dup3(c, fd, 0)
			unix.Close(c)
		}
	}
}

func startAgent() (int, error) {
	// Exec the file /proc/self/exe names ("/init"), not the magic link
	// itself, so the agent shows up under its own name rather than "exe".
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		exe = "/proc/self/exe"
	}
	env := append(os.Environ(), agentEnv+"=1")
	return syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []uintptr{0, 1, 2},
		// Its own session without a controlling terminal: keys typed on
		// the console must not signal the agent.
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
}

// startShell gives a shell on the console for post-mortem debugging.
func startShell() (int, error) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		return 0, err
	}
	consolef("vmbox.debug: starting %s on the console; exit it to power off", sh)
	return syscall.ForkExec(sh, []string{"-sh"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "HOME=/", "TERM=linux"},
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
}

type exited struct {
	pid    int
	status string
}

// reapAll collects every child that has exited, without blocking.
func reapAll() []exited {
	var out []exited
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return out
		}
		out = append(out, exited{pid, describeStatus(ws)})
	}
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// initShutdown is PID 1's way out: stop everything and end the VM.
func initShutdown(cmdline kernelCmdline) {
	if err := shutdownSequence(10*time.Second, cmdline); err != nil {
		consolef("%v", err)
	}
	// reboot(2) returned: nothing more can be done. Exiting PID 1 panics
	// the kernel, which with panic=-1 reboots, and QEMU -no-reboot exits.
	os.Exit(1)
}

// processesLeft counts user processes other than PID 1 and the caller
// that have not exited (zombies and kernel threads do not count).
func processesLeft() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		state, flags, ok := parseStatStateFlags(string(b))
		if !ok || state == 'Z' || state == 'X' || flags&pfKthread != 0 {
			continue
		}
		n++
	}
	return n
}

const pfKthread = 0x00200000 // PF_KTHREAD

// parseStatStateFlags extracts the state (field 3) and flags (field 9)
// from /proc/<pid>/stat. The command (field 2) may contain spaces and
// parentheses, so parsing starts after its last ')'.
func parseStatStateFlags(s string) (state byte, flags uint64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[6] is field 9 (flags).
	if len(f) < 7 || len(f[0]) != 1 {
		return 0, 0, false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], flags, true
}
