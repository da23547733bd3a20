package nsinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// The hidden switch that turns a re-exec of the binary into a helper init:
// argv[0] and an environment variable, both set only by this package.
const (
	Arg0 = "vmbox-runtime-init"
	Env  = "_VMBOX_RUNTIME_INIT"
	// SockFD is the descriptor of the helper's end of the socket pair.
	SockFD = 3
)

// Values of Env: whether the helper owns a new network namespace.
const (
	NetPrivate = "netns"
	NetHost    = "host"
)

// IsInit reports whether this process is a helper init started by the
// runtime, in which case the program must call Init before anything else.
func IsInit() bool {
	return len(os.Args) > 0 && (os.Args[0] == Arg0 && os.Getenv(Env) != "" || os.Args[0] == ExecArg0 && os.Getenv(ExecEnv) == "1")
}

// Init runs the helper init: it waits for its container's configuration,
// sets up the root filesystem and the process, and execs the container's
// command. It never returns. It must be called only when IsInit is true.
func Init() {
	if os.Args[0] == ExecArg0 {
		execTrampoline()
	}
	// The credential changes before execve are per thread: exec must happen
	// from the thread that made them.
	runtime.LockOSThread()
	os.Exit(initMain())
}

func initMain() int {
	sock := SockFD
	unix.CloseOnExec(sock)
	unix.Umask(0)
	// Nothing here is configuration-specific: do it while the helper waits.
	// Slave, not private: mounts and unmounts the host makes while the
	// helper waits (a data disk mounted late, or unmounted at shutdown)
	// still reach its copy of the mount table, and nothing it mounts
	// leaks back.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return initFail(sock, ExitEngineError, fmt.Errorf("make mounts slaves: %w", err))
	}
	if os.Getenv(Env) == NetPrivate {
		if err := loopbackUp(); err != nil {
			return initFail(sock, ExitEngineError, err)
		}
	}
	kind, payload, fds, err := RecvMsg(sock)
	if err == io.EOF {
		return 0 // the pool was closed
	}
	if err != nil {
		return initFail(sock, ExitEngineError, fmt.Errorf("read configuration: %w", err))
	}
	if kind != MsgConfig {
		return initFail(sock, ExitEngineError, fmt.Errorf("unexpected message %q", kind))
	}
	var cfg Config
	if err := json.Unmarshal(payload, &cfg); err != nil {
		return initFail(sock, ExitEngineError, fmt.Errorf("decode configuration: %w", err))
	}
	code, err := runInit(sock, &cfg, fds)
	return initFail(sock, code, err)
}

// initFail reports err to the parent and returns the exit code to use.
func initFail(sock, code int, err error) int {
	var se *StartError
	if errors.As(err, &se) {
		code = se.Code
	}
	b, _ := json.Marshal(ErrorMsg{Code: code, Msg: err.Error()})
	_ = SendMsg(sock, MsgError, b, nil)
	return code
}

// Tracer reports the time spent per step on stderr when on.
type Tracer struct {
	on   bool
	last time.Time
	who  string
}

// NewTracer returns a tracer whose lines start with who.
func NewTracer(on bool, who string) *Tracer {
	return &Tracer{on: on, last: time.Now(), who: who}
}

// Step reports the time since the previous step.
func (t *Tracer) Step(name string) {
	if !t.on {
		return
	}
	now := time.Now()
	who := t.who
	if who == "" {
		who = "init"
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(os.Stderr, "%s: %-12s %6.3f ms  @%d.%03d\n", who, name, float64(now.Sub(t.last).Microseconds())/1000, ts.Sec%1000*1000+ts.Nsec/1e6, ts.Nsec/1000%1000)
	t.last = now
}

// runInit does the container set-up and execs; it returns only on failure.
func runInit(sock int, cfg *Config, stdio []int) (int, error) {
	tr := NewTracer(cfg.Trace, "init")
	tr.Step("received")
	if len(cfg.Args) == 0 {
		return ExitEngineError, errors.New("no command given")
	}
	if cfg.JoinNetNS {
		if len(stdio) == 0 {
			return ExitEngineError, errors.New("no network namespace descriptor was sent")
		}
		fd := stdio[len(stdio)-1]
		stdio = stdio[:len(stdio)-1]
		// Network namespaces are per thread: this is the thread that execs.
		err := unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			return ExitEngineError, fmt.Errorf("join the network namespace: %w", err)
		}
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return ExitEngineError, fmt.Errorf("set hostname: %w", err)
		}
	}
	tty, err := setupRootfs(cfg, tr)
	if err != nil {
		return ExitEngineError, err
	}
	tr.Step("rootfs")
	if tty != nil {
		if err := SendMsg(sock, MsgTty, nil, []int{tty.master}); err != nil {
			return ExitEngineError, fmt.Errorf("send terminal: %w", err)
		}
		unix.Close(tty.master)
		stdio = []int{tty.slave, tty.slave, tty.slave}
	}

	env := cfg.Env
	if !EnvHas(env, "PATH") {
		env = append([]string{"PATH=" + DefaultPath}, env...)
	}
	u, err := LookupUser(cfg.User)
	if err != nil {
		return ExitEngineError, err
	}
	if !EnvHas(env, "HOME") {
		env = append(env, "HOME="+u.Home)
	}
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return ExitEngineError, fmt.Errorf("create working directory: %w", err)
	}
	if cfg.ReadOnly {
		if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return ExitEngineError, fmt.Errorf("make the root filesystem read-only: %w", err)
		}
	}
	if err := unix.Chdir(cwd); err != nil {
		return ExitEngineError, fmt.Errorf("chdir to working directory %s: %w", cwd, err)
	}
	path, err := LookCommand(cfg.Args[0], EnvGet(env, "PATH"))
	if err != nil {
		return ExitNotFound, err
	}
	tr.Step("user+path")

	// Wait until the parent has put this process into its cgroup.
	kind, _, extra, err := RecvMsg(sock)
	for _, fd := range extra {
		unix.Close(fd)
	}
	if err != nil || kind != MsgGo {
		return ExitEngineError, fmt.Errorf("wait for start: %v (%q)", err, kind)
	}
	tr.Step("go")

	if len(stdio) != 3 {
		return ExitEngineError, fmt.Errorf("expected 3 stdio descriptors, got %d", len(stdio))
	}
	for i, fd := range stdio {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return ExitEngineError, fmt.Errorf("set up stdio: %w", err)
		}
	}
	if tty != nil {
		// The helper was started as a session leader (setsid at fork).
		if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
			return ExitEngineError, fmt.Errorf("set controlling terminal: %w", err)
		}
	}
	if err := ConfineThread(u, cfg.Privileged); err != nil {
		return ExitEngineError, err
	}
	tr.Step("confine")
	// The init worked with umask 0; the command gets Docker's 022.
	unix.Umask(0o022)
	err = execRetryingBusy(func() error { return unix.Exec(path, cfg.Args, env) })
	errno, _ := err.(unix.Errno)
	return ExecErrorCode(errno), &StartError{Code: ExecErrorCode(errno), Msg: fmt.Sprintf("exec: %q: %v", cfg.Args[0], err)}
}

// The package takes over a helper re-exec as soon as its own dependencies
// are initialised, so the re-exec does not pay for initialising the rest of
// the program. Calling IsInit/Init from main stays required (see the
// documentation of package container).
func init() {
	if IsInit() {
		Init()
	}
}
