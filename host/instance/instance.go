// Package instance owns the on-disk store of vmbox instances
// (~/.vmbox/<name>, or $VMBOX_HOME/<name>): each instance's configuration,
// SSH keys, data disk, logs, and the locks and files that say whether its
// host process is running.
package instance

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api"
)

// ErrNotExist is returned (wrapped) for an instance that has not been created.
var ErrNotExist = errors.New("instance does not exist")

// DefaultName is the instance used when none is named.
const DefaultName = "default"

// Files inside an instance directory.
const (
	ConfigFile     = "config.json"
	ClientKeyFile  = "id_ed25519"       // the host's private key; the agent trusts its public half
	HostKeyFile    = "ssh_host_ed25519" // the agent's host key, generated here so the host knows it in advance
	DataDiskFile   = "data.raw"         // the guest's data disk (images, containers)
	ConsoleLogFile = "console.log"      // the guest's console
	HostLogFile    = "hostproc.log"     // the host process's events and errors
	PidFile        = "hostproc.pid"     // the host process's pid, informational
	RunLockFile    = "hostproc.lock"    // held by the host process for its whole life
	StartLockFile  = "start.lock"       // serialises start/stop/delete of one instance
	SocketFile     = "vmbox.sock"       // where CLI invocations reach the agent
	InstanceCPIO   = "instance.cpio"    // per-instance initramfs appended to the image's
	BootMarkerFile = "boot.json"        // when the running VM booted, for uptime

	// DockerSocketFile is where Docker clients reach the guest's Docker
	// API through the host process while it runs (on Windows a named
	// pipe instead: DockerPipe).
	DockerSocketFile = "docker.sock"
)

// Config is an instance's persistent configuration.
type Config struct {
	Name      string    `json:"name"`
	Driver    string    `json:"driver"`
	Arch      string    `json:"arch"`
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memoryMiB"`
	DiskGiB   int       `json:"diskGiB"`
	Created   time.Time `json:"created"`
	// DiskInUse is set once a boot has formatted (or found) the data disk
	// and answered; until then the guest may format it again.
	DiskInUse bool `json:"diskInUse,omitempty"`
	// Mounts are host folders shared into the VM besides the defaults
	// (see Shares); a change takes effect at the next start.
	Mounts []Mount `json:"mounts,omitempty"`
	// MountType is how shared folders' file contents reach the VM:
	// MountTypeAuto ("" too) uses virtiofs where the driver can serve it,
	// MountTypeSFTP always the agent's channel.
	MountType string `json:"mountType,omitempty"`
	// IdlePause is how long the VM may go unused (no client operation or
	// Docker connection, no running container) before its host process
	// pauses it, as a Go duration; "" is DefaultIdlePause and "0s" never.
	IdlePause string `json:"idlePause,omitempty"`
}

// DefaultIdlePause is IdlePause for an instance that does not set it: the
// delay Docker Desktop's Resource Saver waits by default.
const DefaultIdlePause = 5 * time.Minute

// MinIdlePause is the shortest IdlePause other than none: a pause and its
// resume cost a few milliseconds, but the guest's clock must be set again.
const MinIdlePause = 5 * time.Second

// IdlePauseAfter is IdlePause as a duration: 0 means never.
func (c Config) IdlePauseAfter() time.Duration {
	if c.IdlePause == "" {
		return DefaultIdlePause
	}
	d, err := time.ParseDuration(c.IdlePause)
	if err != nil {
		return DefaultIdlePause // Validate refuses it; an old file may not have been
	}
	return d
}

func validIdlePause(s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (d > 0 && d < MinIdlePause) {
		return fmt.Errorf("invalid --idle-pause %q: use a duration of at least %s (e.g. 5m), or 0 to never pause", s, MinIdlePause)
	}
	return nil
}

// Mount types (Config.MountType).
const (
	MountTypeAuto = "auto"
	MountTypeSFTP = "sftp"
)

// Defaults for a new instance.
const (
	DefaultCPUs      = 2
	DefaultMemoryMiB = 2048
	DefaultDiskGiB   = 100
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// ValidateName rejects names that cannot be a directory or hostname.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid instance name %q: use 1-32 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks a configuration's values.
func (c Config) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	switch {
	case c.CPUs < 1 || c.CPUs > 256:
		return fmt.Errorf("invalid --cpus %d: must be between 1 and 256", c.CPUs)
	case c.MemoryMiB < 256:
		return fmt.Errorf("invalid --memory %dMiB: at least 256MiB is needed", c.MemoryMiB)
	case c.DiskGiB < 1:
		return fmt.Errorf("invalid --disk %dGiB: at least 1GiB is needed", c.DiskGiB)
	case c.Arch != "amd64" && c.Arch != "arm64":
		return fmt.Errorf("unsupported guest architecture %q: use amd64 or arm64", c.Arch)
	case c.MountType != "" && c.MountType != MountTypeAuto && c.MountType != MountTypeSFTP:
		return fmt.Errorf("invalid --mount-type %q: use auto or sftp", c.MountType)
	}
	return validIdlePause(c.IdlePause)
}

// Store is the directory that holds all instances.
type Store struct {
	Root string
}

// DefaultRoot is $VMBOX_HOME, else ~/.vmbox (%LOCALAPPDATA%\vmbox on Windows).
func DefaultRoot() (string, error) {
	if h := os.Getenv("VMBOX_HOME"); h != "" {
		return filepath.Abs(h)
	}
	if runtime.GOOS == "windows" {
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "vmbox"), nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory (set VMBOX_HOME): %w", err)
	}
	return filepath.Join(home, ".vmbox"), nil
}

// Instance is one instance directory.
type Instance struct {
	Dir    string
	Config Config
}

// Path returns the path of a file inside the instance directory.
func (i *Instance) Path(file string) string { return filepath.Join(i.Dir, file) }

// Get loads an existing instance.
func (s Store) Get(name string) (*Instance, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Root, name)
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("instance %q: %w", name, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read instance %q: %w", name, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("instance %q: corrupt %s: %w", name, ConfigFile, err)
	}
	return &Instance{Dir: dir, Config: c}, nil
}

// List returns all instances, sorted by name. Directories without a valid
// configuration are skipped.
func (s Store) List() ([]*Instance, error) {
	entries, err := os.ReadDir(s.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []*Instance
	for _, e := range entries {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		inst, err := s.Get(e.Name())
		if err != nil {
			continue
		}
		out = append(out, inst)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Config.Name < out[b].Config.Name })
	return out, nil
}

// Create makes a new instance: directory, configuration, SSH keys and a
// sparse data disk. A half-created instance (interrupted) is completed by a
// later Create, since the configuration file is written last.
func (s Store) Create(c Config) (*Instance, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Root, c.Name)
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, fmt.Errorf("instance %q already exists", c.Name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create instance directory: %w", err)
	}
	inst := &Instance{Dir: dir, Config: c}
	for _, key := range []string{ClientKeyFile, HostKeyFile} {
		if err := ensureKey(inst.Path(key)); err != nil {
			return nil, err
		}
	}
	if err := inst.EnsureDisk(); err != nil {
		return nil, err
	}
	if c.Created.IsZero() {
		inst.Config.Created = time.Now().UTC().Truncate(time.Second)
	}
	if err := inst.SaveConfig(); err != nil {
		return nil, err
	}
	return inst, nil
}

// SaveConfig writes the configuration atomically.
func (i *Instance) SaveConfig() error {
	b, err := json.MarshalIndent(i.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return WriteFileAtomic(i.Path(ConfigFile), append(b, '\n'), 0o600)
}

// EnsureDisk creates the sparse data disk, or grows it when the configured
// size is larger. It never shrinks or truncates a disk that holds data.
func (i *Instance) EnsureDisk() error {
	size := int64(i.Config.DiskGiB) << 30
	f, err := os.OpenFile(i.Path(DataDiskFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create data disk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat data disk: %w", err)
	}
	if st.Size() < size {
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("size data disk: %w", err)
		}
	}
	return nil
}

func ensureKey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "vmbox")
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := WriteFileAtomic(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return err
	}
	return WriteFileAtomic(path, pem.EncodeToMemory(block), 0o600)
}

// Keys are the SSH identities of an instance.
type Keys struct {
	Client        ssh.Signer    // what the host authenticates with
	Host          ssh.Signer    // what the agent presents (the host process presents it too)
	HostPublic    ssh.PublicKey // Host's public half, for verification
	ClientPublic  ssh.PublicKey
	HostKeyPEM    []byte // the agent's host key, delivered to the guest
	AuthorizedKey []byte // authorized_keys line of the client key, delivered to the guest
}

// LoadKeys reads an instance's key pair files.
func LoadKeys(dir string) (*Keys, error) {
	read := func(name string) ([]byte, ssh.Signer, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("read key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("parse key %s: %w", name, err)
		}
		return b, s, nil
	}
	_, client, err := read(ClientKeyFile)
	if err != nil {
		return nil, err
	}
	hostPEM, host, err := read(HostKeyFile)
	if err != nil {
		return nil, err
	}
	return &Keys{
		Client:        client,
		Host:          host,
		HostPublic:    host.PublicKey(),
		ClientPublic:  client.PublicKey(),
		HostKeyPEM:    hostPEM,
		AuthorizedKey: ssh.MarshalAuthorizedKey(client.PublicKey()),
	}, nil
}

// Keys loads this instance's SSH identities.
func (i *Instance) Keys() (*Keys, error) { return LoadKeys(i.Dir) }

// Delete removes the instance directory and everything in it. The caller
// must have stopped the instance.
func (i *Instance) Delete() error {
	if err := os.RemoveAll(i.Dir); err != nil {
		return fmt.Errorf("delete instance %q: %w", i.Config.Name, err)
	}
	return nil
}

// WriteFileAtomic writes data to path so that readers see either the old or
// the new content, never a mix, even across a crash.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// BootInfo is what the host process records in BootMarkerFile once the
// agent answers: the running VM's processes and when it booted.
type BootInfo struct {
	Pid           int    `json:"pid"`
	HypervisorPid int    `json:"hypervisorPid,omitempty"`
	Driver        string `json:"driver"`
	Accelerator   string `json:"accelerator"`
	// EmulatedBecause says why the guest's CPU is emulated where a
	// hardware accelerator was wanted (driver.EmulationExplainer).
	EmulatedBecause string    `json:"emulatedBecause,omitempty"`
	Started         time.Time `json:"started"`
	Ready           time.Time `json:"ready"`
	// AgentSilentSince is set while the agent has not answered for
	// longer than the silence limit: when it last answered.
	AgentSilentSince *time.Time `json:"agentSilentSince,omitempty"`
	// HypervisorState is set while the agent is silent and the hypervisor
	// holds the guest in a state other than running (driver.RunStateReporter):
	// "paused", "io-error", "internal-error", ...
	HypervisorState string `json:"hypervisorState,omitempty"`
	// IdlePausedSince is set while the host process holds the VM paused
	// because nothing used it (Config.IdlePause): when it paused it.
	IdlePausedSince *time.Time `json:"idlePausedSince,omitempty"`
	// Shares are the host folders the VM mounted at this boot.
	Shares []api.Share `json:"shares,omitempty"`
	// Gateway, set when the agent's forwarding gateway is on a host
	// loopback address, is where clients open an operation's plain
	// streams (sshproto.ReqStreamsElsewhere). Its token is why this file
	// is readable by its owner only.
	Gateway *Gateway `json:"gateway,omitempty"`
}

// Gateway is the address of the agent's forwarding gateway on the host and
// the token that opens its streams.
type Gateway struct {
	Addr  string `json:"addr"`  // "127.0.0.1:port"
	Token string `json:"token"` // hex
}

// ReadBootInfo reads the boot marker of a running instance.
func (i *Instance) ReadBootInfo() (*BootInfo, error) {
	b, err := os.ReadFile(i.Path(BootMarkerFile))
	if err != nil {
		return nil, err
	}
	var bi BootInfo
	if err := json.Unmarshal(b, &bi); err != nil {
		return nil, fmt.Errorf("corrupt boot marker %s: %w", i.Path(BootMarkerFile), err)
	}
	return &bi, nil
}

// WriteBootInfo replaces the boot marker atomically.
func (i *Instance) WriteBootInfo(bi BootInfo) error {
	b, err := json.Marshal(bi)
	if err != nil {
		return fmt.Errorf("encode boot marker: %w", err)
	}
	return WriteFileAtomic(i.Path(BootMarkerFile), b, 0o600)
}
