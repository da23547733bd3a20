package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/internal/version"
)

// Agent serves operations.
type Agent struct {
	Log *slog.Logger
	// Shutdown powers the guest off (in a VM) or stops serving (local
	// mode). It is called after the shutdown request has been answered.
	Shutdown func()
	// Containers serves the container and image operations; nil when the
	// engine is not available, and those operations then fail.
	Containers Handler
	// Trim, when set, returns the space removals free to the host.
	Trim *Trimmer
	// WaitDataDisk, when set, waits until the VM's data disk is mounted
	// (starting that if need be): a shell must not see, or write to, the
	// directory the disk will cover.
	WaitDataDisk func(context.Context) error
}

// Serve implements Handler.
func (a *Agent) Serve(ctx context.Context, s *Session) int {
	switch s.Request.Op {
	case api.OpPing:
		io.WriteString(s.Stdout, `"pong"`)
		return 0
	case api.OpVersion:
		return reply(s, a.version())
	case api.OpShell:
		var args api.ShellArgs
		if err := s.Request.Decode(&args); err != nil {
			return fail(s, err)
		}
		return a.shell(ctx, s, args)
	case api.OpShutdown:
		a.Log.Info("shutdown requested")
		if a.Shutdown != nil {
			go a.Shutdown()
		}
		return 0
	}
	if a.Containers != nil {
		code := a.Containers.Serve(ctx, s)
		if code == 0 && a.Trim != nil && (s.Request.Op == api.OpRm || s.Request.Op == api.OpRmi) {
			a.Trim.Poke()
		}
		return code
	}
	return fail(s, fmt.Errorf("unknown operation %q", s.Request.Op))
}

func (a *Agent) version() api.Version {
	v := api.Version{
		Version:   version.Version,
		GitCommit: version.GitCommit,
		GoVersion: version.GoVersion(),
		BuildTime: version.BuildTime,
		Os:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		v.KernelVersion = unix.ByteSliceToString(u.Release[:])
		v.Hostname = unix.ByteSliceToString(u.Nodename[:])
	}
	return v
}

// reply writes v as the operation's JSON answer.
func reply(s *Session, v any) int {
	if err := json.NewEncoder(s.Stdout).Encode(v); err != nil {
		return api.ExitEngineError
	}
	return 0
}

// fail reports an engine error: one line on stderr, exit code 125.
func fail(s *Session, err error) int {
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
	fmt.Fprintln(s.Stderr, msg)
	return api.ExitEngineError
}

const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// shellEnv is the environment of guest shells: the agent's own is PID 1's,
// which is nearly empty.
func shellEnv(s *Session, extra []string) []string {
	env := []string{"PATH=" + guestPath, "HOME=/root", "USER=root", "SHELL=/bin/sh"}
	if s.PTY != nil {
		term := s.PTY.Term
		if term == "" {
			term = "xterm"
		}
		env = append(env, "TERM="+term)
	}
	if os.Getpid() != 1 {
		// Local mode: keep the caller's environment, like sudo -E would not; only PATH matters.
		if p := os.Getenv("PATH"); p != "" {
			env[0] = "PATH=" + p
		}
	}
	env = append(env, s.Env...)
	return append(env, extra...)
}
