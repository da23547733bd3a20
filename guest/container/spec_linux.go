package container

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container/internal/nsinit"
)

// DefaultPath is the PATH a container gets when neither its image nor its
// user sets one (Docker's value).
const DefaultPath = nsinit.DefaultPath

// Network modes a Spec accepts. The empty mode is NetworkNone.
const (
	NetworkNone = "none" // a private network namespace with only loopback, up
	NetworkHost = "host" // the host's network namespace
)

// Exit codes with the meaning Docker gives them (the values of the
// guest/api constants).
const (
	ExitEngineError   = nsinit.ExitEngineError
	ExitNotExecutable = nsinit.ExitNotExecutable
	ExitNotFound      = nsinit.ExitNotFound
	ExitSignalBase    = nsinit.ExitSignalBase
)

// ErrNotRunning is returned (wrapped) when a process has already exited.
var ErrNotRunning = errors.New("process is not running")

// Spec describes one container: its root filesystem, its process and its
// isolation. The engine fills it from the image and the user's request.
type Spec struct {
	// ID names the container's cgroup; 1 to 128 characters of [A-Za-z0-9_.-].
	ID string
	// Dir is the container's private directory: the runtime keeps the
	// overlay's upper and work directories and the rootfs mount point there.
	Dir string
	// Layers are the image's unpacked layer directories, lowest first. They
	// are only ever read.
	Layers []string

	// Args is the command; Args[0] is looked up in the container's PATH
	// unless it contains a slash.
	Args []string
	// Env is the container's environment (image's, then the user's, merged
	// by the caller). The runtime adds PATH when missing, HOSTNAME, TERM for
	// terminals and HOME from the user's passwd entry.
	Env []string
	// User is "", "user", "uid", "user:group" or "uid:gid", resolved against
	// the container's /etc/passwd and /etc/group.
	User string
	// WorkingDir is created when missing; empty means "/".
	WorkingDir string
	Hostname   string

	// Tty gives the process a terminal from the container's own devpts
	// instance instead of pipes; ConsoleSize is its initial size.
	Tty         bool
	ConsoleSize api.TermSize
	// OpenStdin gives the process a stdin pipe (Process.Stdin); otherwise
	// stdin is /dev/null (or the terminal, with Tty).
	OpenStdin bool

	NetworkMode string
	// NetNS, when set, is a network namespace (a path such as
	// /proc/PID/ns/net) the container joins instead of having its own:
	// Docker's --network container:NAME.
	NetNS string
	// Prepare, when set, runs once the container's init exists, in its
	// namespaces, and before the command is exec'd: pid is the init's, so
	// /proc/PID/ns/net is the container's network namespace to plumb. An
	// error fails the start.
	Prepare func(pid int) error
	// Mounts are made into the root filesystem: bind mounts (sources are
	// paths of the VM) and tmpfs; targets are absolute paths in the
	// container.
	Mounts []Mount

	Privileged bool
	ReadOnly   bool
	Resources  Resources
}

// Resources are a container's cgroup limits; zero means unlimited.
type Resources struct {
	Memory    int64 // bytes; swap is limited to the same total
	NanoCPUs  int64 // 1e9 = one CPU
	PidsLimit int64
}

// Mount is one mount into a container: a bind mount, or a tmpfs.
type Mount = nsinit.Mount

// MountTmpfs is Mount.Type for a tmpfs.
const MountTmpfs = nsinit.MountTmpfs

// CheckTmpfsOptions checks Docker's --tmpfs options ("size=64m,mode=755").
func CheckTmpfsOptions(opts string) error {
	_, _, err := nsinit.TmpfsOptions(opts)
	return err
}

// ExecSpec describes a process started inside a running container.
type ExecSpec struct {
	Args        []string
	Env         []string // complete environment; PATH and HOME are added when missing
	User        string
	WorkingDir  string
	Tty         bool
	ConsoleSize api.TermSize
	OpenStdin   bool
	Privileged  bool
}

// Exit is how a process ended.
type Exit struct {
	// Code is the exit status, or 128+N when killed by signal N.
	Code int
	// Signal is the signal that killed the process, or 0.
	Signal syscall.Signal
	// OOMKilled reports that the kernel's OOM killer killed a process of the
	// container (only known for a container's init).
	OOMKilled bool
	// UserTime and SysTime are the CPU time used by the process and the
	// children it waited for, in nanoseconds.
	UserTime, SysTime int64
}

// StartError is a failure to start a container's or an exec's process. Code
// is ExitNotFound, ExitNotExecutable or ExitEngineError, as Docker reports
// them.
type StartError = nsinit.StartError

// ExitCode maps an error from Start or Exec to the exit code Docker would
// report: 126/127 for commands that cannot run, 125 for anything else.
func ExitCode(err error) int {
	var se *StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return ExitEngineError
}

// MergeEnv returns base with every entry of each override list replacing the
// entry of the same name, or appended when new. Entries without "=" are
// kept as given (Docker passes them through).
func MergeEnv(base []string, overrides ...[]string) []string {
	out := make([]string, 0, len(base)+8)
	index := make(map[string]int, len(base)+8)
	add := func(kv string) {
		name, _, _ := strings.Cut(kv, "=")
		if i, ok := index[name]; ok {
			out[i] = kv
			return
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		add(kv)
	}
	for _, o := range overrides {
		for _, kv := range o {
			add(kv)
		}
	}
	return out
}

func validID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("invalid container id %q", id)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return fmt.Errorf("invalid container id %q", id)
		}
	}
	if id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}

// MountRootfs mounts the root filesystem of a container that is not
// running (spec's Dir and Layers) at target, read-write, in the caller's
// mount namespace: files copied in there are the container's when it
// starts. The caller unmounts it before the container starts.
func MountRootfs(spec *Spec, target string) error {
	return nsinit.MountOverlay(spec.Dir, spec.Layers, target)
}

// WriteDiff writes what the container changed in its root filesystem as
// an image layer (a tar with OCI whiteouts): docker commit's layer.
func WriteDiff(spec *Spec, w io.Writer) error {
	return nsinit.WriteUpperDiff(spec.Dir, w)
}
