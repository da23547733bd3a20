// Package api defines the protocol between the vmbox host CLI and the guest
// agent: the operations a client may ask for, their JSON arguments and
// replies, and the exit codes that carry their outcome.
//
// Transport: every operation is one SSH "session" channel whose "exec"
// request payload is a JSON-encoded Request. The channel's stdin, stdout and
// stderr (SSH extended data 1) carry the operation's streams; the SSH
// "exit-status" request carries its exit code. Operations that answer with
// data write one JSON document to stdout. A failure that is the engine's, not
// the container's, exits with ExitEngineError and a one-line message on stderr.
// A "pty-req" before "exec" asks for a terminal; "window-change" and "signal"
// requests reach the process while it runs.
package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// SSHUser is the user name the host authenticates as.
const SSHUser = "vmbox"

// Operation names carried in Request.Op.
const (
	OpVersion  = "version"  // -> Version
	OpShell    = "shell"    // ShellArgs; runs a command (or sh) in the guest itself
	OpShutdown = "shutdown" // syncs, unmounts and powers the VM off
	OpPing     = "ping"     // answers "pong"; used for readiness

	OpRun     = "run"     // RunArgs: create + attach + start + wait (+ remove), streams attached
	OpCreate  = "create"  // CreateArgs -> CreateReply
	OpStart   = "start"   // ContainerArgs
	OpAttach  = "attach"  // ContainerArgs; streams until the container exits, exit code = container's
	OpWait    = "wait"    // ContainerArgs -> WaitReply
	OpPs      = "ps"      // PsArgs -> []ContainerSummary
	OpLogs    = "logs"    // LogsArgs; stdout/stderr as recorded
	OpExec    = "exec"    // ExecArgs; streams attached, exit code = process's
	OpStop    = "stop"    // StopArgs
	OpKill    = "kill"    // KillArgs
	OpRm      = "rm"      // RmArgs
	OpInspect = "inspect" // InspectArgs -> []json.RawMessage (ContainerInspect or ImageInspect)
	OpResize  = "resize"  // ResizeArgs

	OpPull   = "pull"   // PullArgs; stdout is a stream of JSON PullProgress lines
	OpImages = "images" // ImagesArgs -> []ImageSummary
	OpRmi    = "rmi"    // RmiArgs -> []RmiResult
	OpLoad   = "load"   // stdin is a docker-save or OCI archive; stdout: LoadReply
	OpSave   = "save"   // SaveArgs; stdout is a docker-save archive
	OpTag    = "tag"    // TagArgs
	OpPush   = "push"   // PullArgs (Ref is the name:tag pushed); stdout is a stream of JSON PullProgress lines
	OpBuild  = "build"  // BuildArgs; stdin is the context as a tar; stdout is the build's output, then the image ID on its last line

	OpBuilderPrune = "builder-prune" // -> BuilderPruneReply
	OpAuth         = "auth"          // AuthArgs: checks credentials with a registry (exit 1 when refused)
)

// Exit codes with the meaning Docker gives them.
const (
	ExitEngineError   = 125 // the engine failed; the container did not run
	ExitNotExecutable = 126 // the command exists but cannot be executed
	ExitNotFound      = 127 // the command was not found
	ExitSignalBase    = 128 // 128+N: killed by signal N
)

// Request is the payload of the SSH "exec" request of every operation.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// NewRequest encodes args into a Request for op.
func NewRequest(op string, args any) (Request, error) {
	r := Request{Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return r, fmt.Errorf("encode %s arguments: %w", op, err)
		}
		r.Args = b
	}
	return r, nil
}

// Decode unmarshals the request's arguments into v.
func (r Request) Decode(v any) error {
	if len(r.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Args, v); err != nil {
		return fmt.Errorf("decode %s arguments: %w", r.Op, err)
	}
	return nil
}

// Version is the agent's answer to OpVersion.
type Version struct {
	Version       string `json:"Version"`
	GitCommit     string `json:"GitCommit"`
	GoVersion     string `json:"GoVersion"`
	KernelVersion string `json:"KernelVersion"`
	Os            string `json:"Os"`
	Arch          string `json:"Arch"`
	BuildTime     string `json:"BuildTime,omitempty"`
	Hostname      string `json:"Hostname,omitempty"`
}

// ShellArgs runs Argv in the guest (not in a container). Empty Argv means
// an interactive login shell.
type ShellArgs struct {
	Argv []string `json:"argv,omitempty"`
	Env  []string `json:"env,omitempty"`
}

// ContainerConfig is what a container is created from. Field names follow
// Docker's container create body where one exists.
type ContainerConfig struct {
	Image      string   `json:"Image"`
	Name       string   `json:"Name,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`        // overrides the image's Cmd when non-nil
	Entrypoint []string `json:"Entrypoint,omitempty"` // overrides the image's Entrypoint when non-nil
	// EntrypointSet distinguishes --entrypoint "" (clear it) from no flag.
	EntrypointSet bool     `json:"EntrypointSet,omitempty"`
	Env           []string `json:"Env,omitempty"`
	WorkingDir    string   `json:"WorkingDir,omitempty"`
	User          string   `json:"User,omitempty"`
	Hostname      string   `json:"Hostname,omitempty"`
	Tty           bool     `json:"Tty,omitempty"`
	OpenStdin     bool     `json:"OpenStdin,omitempty"`
	// ConsoleSize is [rows, cols] for Tty containers.
	ConsoleSize [2]uint `json:"ConsoleSize,omitempty"`

	AutoRemove bool  `json:"AutoRemove,omitempty"`
	Memory     int64 `json:"Memory,omitempty"`    // bytes; 0 = unlimited
	NanoCPUs   int64 `json:"NanoCpus,omitempty"`  // 1e9 = one CPU; 0 = unlimited
	PidsLimit  int64 `json:"PidsLimit,omitempty"` // 0 = unlimited
	// NetworkMode is "bridge" (the default network, when empty), "host",
	// "none", "container:NAME" or the name or ID of a user network.
	NetworkMode string `json:"NetworkMode,omitempty"`
	// NetworkAliases are more names the container has in DNS on its
	// (user) network.
	NetworkAliases []string `json:"NetworkAliases,omitempty"`
	// PortBindings publish container ports on the host.
	PortBindings []PortBinding `json:"PortBindings,omitempty"`
	// PublishAllPorts publishes every port the image exposes (and
	// ExposedPorts) on a free host port.
	PublishAllPorts bool `json:"PublishAllPorts,omitempty"`
	// ExposedPorts adds to the image's ("80/tcp").
	ExposedPorts []string `json:"ExposedPorts,omitempty"`
	// ExtraHosts are "name:ip" lines added to the container's /etc/hosts;
	// the ip "host-gateway" means the host.
	ExtraHosts []string          `json:"ExtraHosts,omitempty"`
	DNS        []string          `json:"Dns,omitempty"`
	DNSSearch  []string          `json:"DnsSearch,omitempty"`
	DNSOptions []string          `json:"DnsOptions,omitempty"`
	Domainname string            `json:"Domainname,omitempty"`
	Privileged bool              `json:"Privileged,omitempty"`
	ReadOnly   bool              `json:"ReadonlyRootfs,omitempty"`
	Pull       string            `json:"Pull,omitempty"` // "missing" (default), "always", "never"
	Platform   string            `json:"Platform,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
	// Tmpfs mounts a new tmpfs at each path (absolute, in the container)
	// with Docker's --tmpfs options ("size=64m,mode=755", may be empty).
	Tmpfs map[string]string `json:"Tmpfs,omitempty"`
	// RestartPolicy says whether the engine starts the container again
	// when it exits and when the engine itself starts.
	RestartPolicy RestartPolicy `json:"RestartPolicy,omitzero"`
	// Mounts are the container's volumes and bind mounts (-v, --mount).
	Mounts []Mount `json:"Mounts,omitempty"`
	// VolumesFrom takes the mounts of other containers ("NAME[:ro|:rw]").
	VolumesFrom []string `json:"VolumesFrom,omitempty"`
}

// RunArgs is OpRun: create, attach the streams, start, wait, and remove when
// Config.AutoRemove. A missing image is pulled first, progress on stderr.
type RunArgs struct {
	Config ContainerConfig `json:"config"`
	// Detach returns the container ID on stdout once it has started.
	Detach bool `json:"detach,omitempty"`
	// Auth is the registry credential for pulling a missing image.
	Auth *RegistryAuth `json:"auth,omitempty"`
	// InsecureRegistries may be reached over plain HTTP when pulling.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// CreateArgs is OpCreate.
type CreateArgs struct {
	Config ContainerConfig `json:"config"`
}

// CreateReply answers OpCreate.
type CreateReply struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings"`
}

// ContainerArgs names one container by ID, ID prefix or name.
type ContainerArgs struct {
	Container string `json:"container"`
}

// WaitReply answers OpWait.
type WaitReply struct {
	StatusCode int    `json:"StatusCode"`
	Error      string `json:"Error,omitempty"`
}

// PsArgs is OpPs.
type PsArgs struct {
	All bool `json:"all,omitempty"`
	// Filters are Docker's: id, name, label, status, ancestor, exited and
	// network. A status filter lists stopped containers too.
	Filters Filters `json:"filters,omitempty"`
}

// ContainerSummary is one row of OpPs, shaped like Docker's /containers/json.
type ContainerSummary struct {
	ID      string        `json:"Id"`
	Names   []string      `json:"Names"`
	Image   string        `json:"Image"`
	ImageID string        `json:"ImageID"`
	Command string        `json:"Command"`
	Created int64         `json:"Created"` // unix seconds
	State   string        `json:"State"`   // created, running, exited
	Status  string        `json:"Status"`  // e.g. "Exited (3) 1 second ago"
	Ports   []PortSummary `json:"Ports"`
	// Networks names the networks the container is on.
	Networks []string          `json:"Networks,omitempty"`
	Labels   map[string]string `json:"Labels"`
}

// LogsArgs is OpLogs.
type LogsArgs struct {
	Container  string `json:"container"`
	Follow     bool   `json:"follow,omitempty"`
	Tail       int    `json:"tail"` // -1 = all
	Timestamps bool   `json:"timestamps,omitempty"`
	// Since and Until, when set, keep only the lines recorded in that
	// time range.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// ExecArgs is OpExec.
type ExecArgs struct {
	Container   string   `json:"container"`
	Cmd         []string `json:"Cmd"`
	Env         []string `json:"Env,omitempty"`
	WorkingDir  string   `json:"WorkingDir,omitempty"`
	User        string   `json:"User,omitempty"`
	Tty         bool     `json:"Tty,omitempty"`
	OpenStdin   bool     `json:"OpenStdin,omitempty"`
	Privileged  bool     `json:"Privileged,omitempty"`
	ConsoleSize [2]uint  `json:"ConsoleSize,omitempty"`
}

// StopArgs is OpStop. Timeout < 0 means the default (10 s).
type StopArgs struct {
	Container string `json:"container"`
	Timeout   int    `json:"timeout"`
}

// KillArgs is OpKill. Signal is a name ("KILL", "SIGTERM") or number.
type KillArgs struct {
	Container string `json:"container"`
	Signal    string `json:"signal,omitempty"`
}

// RmArgs is OpRm.
type RmArgs struct {
	Container string `json:"container"`
	Force     bool   `json:"force,omitempty"`
	// Volumes removes the container's anonymous volumes with it.
	Volumes bool `json:"volumes,omitempty"`
}

// InspectArgs is OpInspect. Type is "container", "image" or "" (either).
type InspectArgs struct {
	Names []string `json:"names"`
	Type  string   `json:"type,omitempty"`
}

// TermSize is a terminal's size in character cells: the one type for it
// in the guest. uint16 is what the kernel's winsize holds.
type TermSize struct{ Rows, Cols uint16 }

// ConsoleTermSize converts Docker's ConsoleSize ([rows, cols]).
func ConsoleTermSize(consoleSize [2]uint) TermSize {
	return TermSize{Rows: uint16(consoleSize[0]), Cols: uint16(consoleSize[1])}
}

// ResizeArgs is OpResize (also sent as SSH window-change on attached streams).
type ResizeArgs struct {
	Container string `json:"container"`
	ExecID    string `json:"exec,omitempty"`
	Rows      uint   `json:"h"`
	Cols      uint   `json:"w"`
}

// State is a container's persisted state, shaped like Docker's State object.
type State struct {
	Status string `json:"Status"` // created, running, restarting, exited
	// Running: the container's process runs. Restarting: it exited and
	// its restart policy starts it again after a delay.
	Running    bool      `json:"Running"`
	Paused     bool      `json:"Paused"`
	Restarting bool      `json:"Restarting"`
	OOMKilled  bool      `json:"OOMKilled"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	Error      string    `json:"Error"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
}

// ContainerInspect answers OpInspect for a container.
type ContainerInspect struct {
	ID      string          `json:"Id"`
	Name    string          `json:"Name"`
	Created time.Time       `json:"Created"`
	Path    string          `json:"Path"`
	Args    []string        `json:"Args"`
	State   State           `json:"State"`
	Image   string          `json:"Image"` // image ID
	Config  ContainerConfig `json:"Config"`
	LogPath string          `json:"LogPath"`
	// RestartCount is how many times the restart policy has started the
	// container since it was last started by hand.
	RestartCount int `json:"RestartCount"`
	// HostnamePath, HostsPath and ResolvConfPath are the files the
	// container sees at /etc/hostname, /etc/hosts and /etc/resolv.conf.
	HostnamePath    string          `json:"HostnamePath"`
	HostsPath       string          `json:"HostsPath"`
	ResolvConfPath  string          `json:"ResolvConfPath"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
	// Mounts are the container's volumes and bind mounts.
	Mounts []VolumeMountPoint `json:"Mounts"`
}

// PullArgs is OpPull.
type PullArgs struct {
	Ref      string `json:"ref"`
	Platform string `json:"platform,omitempty"`
	// Auth is a docker config.json "auths" entry's content for the registry, if any.
	Auth *RegistryAuth `json:"auth,omitempty"`
	// InsecureRegistries are hosts (host[:port]) that may be reached over plain HTTP.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// RegistryAuth is a credential for one registry.
type RegistryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"` // base64 user:password
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// PullProgress is one line of a pull's progress stream, shaped like the
// Docker API's JSON messages.
type PullProgress struct {
	Status         string          `json:"status,omitempty"`
	ID             string          `json:"id,omitempty"`
	ProgressDetail *ProgressDetail `json:"progressDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
}

// ProgressDetail counts bytes of one layer.
type ProgressDetail struct {
	Current int64 `json:"current"`
	Total   int64 `json:"total"`
}

// ImagesArgs is OpImages.
type ImagesArgs struct {
	All bool `json:"all,omitempty"`
}

// ImageSummary is one row of OpImages, shaped like Docker's /images/json.
type ImageSummary struct {
	ID          string   `json:"Id"` // "sha256:<config digest>"
	RepoTags    []string `json:"RepoTags"`
	RepoDigests []string `json:"RepoDigests"`
	Created     int64    `json:"Created"` // unix seconds
	Size        int64    `json:"Size"`    // unpacked bytes
	// Labels are the image's LABELs.
	Labels map[string]string `json:"Labels,omitempty"`
}

// RmiArgs is OpRmi.
type RmiArgs struct {
	Names []string `json:"names"`
	Force bool     `json:"force,omitempty"`
}

// RmiResult is one entry of OpRmi's answer.
type RmiResult struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// LoadReply answers OpLoad.
type LoadReply struct {
	Loaded []string `json:"loaded"` // "name:tag" or image IDs
}

// TagArgs is OpTag: Target becomes a name of the image Source names.
type TagArgs struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// BuildArgs is OpBuild: build the Dockerfile of the context on stdin.
type BuildArgs struct {
	Dockerfile string `json:"dockerfile,omitempty"` // path in the context
	// ContextSize is the context's bytes, checked against the VM's free
	// disk before any is sent.
	ContextSize int64             `json:"contextSize,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	BuildArgs   map[string]string `json:"buildArgs,omitempty"`
	Target      string            `json:"target,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Pull        bool              `json:"pull,omitempty"`
	NoCache     bool              `json:"noCache,omitempty"`
	Quiet       bool              `json:"quiet,omitempty"`
	// Auth maps registries to credentials for FROM images to pull.
	Auth               map[string]RegistryAuth `json:"auth,omitempty"`
	InsecureRegistries []string                `json:"insecureRegistries,omitempty"`
}

// AuthArgs is OpAuth.
type AuthArgs struct {
	Server             string   `json:"server"` // host[:port]; "docker.io" for Docker Hub
	Username           string   `json:"username"`
	Password           string   `json:"password"`
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// BuilderPruneReply answers OpBuilderPrune.
type BuilderPruneReply struct {
	CachesDeleted  []string `json:"CachesDeleted"`
	SpaceReclaimed uint64   `json:"SpaceReclaimed"`
}

// SaveArgs is OpSave.
type SaveArgs struct {
	Names []string `json:"names"`
}

// ImageInspect answers OpInspect for an image.
type ImageInspect struct {
	ID           string      `json:"Id"`
	RepoTags     []string    `json:"RepoTags"`
	RepoDigests  []string    `json:"RepoDigests"`
	Created      string      `json:"Created"`
	Architecture string      `json:"Architecture"`
	Os           string      `json:"Os"`
	Size         int64       `json:"Size"`
	Config       ImageConfig `json:"Config"`
	RootFS       struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
}

// ImageConfig is the runtime part of an image's configuration.
type ImageConfig struct {
	Env        []string `json:"Env,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	User       string   `json:"User,omitempty"`
	// ExposedPorts are the image's EXPOSE entries ("80/tcp").
	ExposedPorts []string `json:"ExposedPorts,omitempty"`
	// Volumes are the image's VOLUME paths: each gets an anonymous
	// volume unless a mount of the container covers it.
	Volumes []string `json:"Volumes,omitempty"`
	// Labels are the image's LABELs.
	Labels map[string]string `json:"Labels,omitempty"`
}

// AgentPort is the port the guest agent serves SSH on: a TCP port on the
// guest's network address under QEMU (reached through user networking's
// host forwarding), an AF_VSOCK port under vz. Every connection is a plain
// SSH connection, and any number may be open at once.
const AgentPort = 2222

// DockerSocket is where the agent serves the Docker Engine API in the
// guest: containers may mount it, and the host process relays its own
// socket there (sshproto.ChanStreamLocal).
const DockerSocket = "/var/run/docker.sock"
