package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/lifecycle"
	"github.com/vmbox/vmbox/host/sshclient"
)

type runFlags struct {
	name, workdir, user, hostname, domainname, memory, cpus, entrypoint, pull, platform string
	rm, detach, interactive, tty, privileged, readOnly, noStart                         bool
	env, envFiles                                                                       []string
	restart                                                                             string
	labels, labelFiles, tmpfs                                                           []string
	volumes, mounts, volumesFrom                                                        []string
	pidsLimit                                                                           int64
	net                                                                                 networkFlags
}

func (a *app) runCommand() *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Run a command in a new container",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				// A usage error, exit 125 as in docker run.
				return usageError("run needs an IMAGE (see '%s --help')", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(args, cmd.Flags().Changed("entrypoint"))
			auth := registryAuth(args[0])
			if err != nil {
				return err
			}
			if err := a.checkBinds(cfg); err != nil {
				return err
			}
			c, err := a.connectOrStart(cmd.Context(), f.noStart)
			if err != nil {
				return err
			}
			defer c.Close()
			if f.detach {
				var out strings.Builder
				code, err := c.Stream(cmd.Context(), api.OpRun, api.RunArgs{Config: cfg, Detach: true, Auth: auth, InsecureRegistries: a.insecureRegistries}, sshclient.IO{Stdout: &out, Stderr: a.stderr})
				if err != nil {
					return err
				}
				fmt.Fprint(a.stdout, out.String())
				if code != 0 {
					return &ExitError{Code: code}
				}
				return nil
			}
			code, err := a.stream(cmd.Context(), c, api.OpRun, api.RunArgs{Config: cfg, Auth: auth, InsecureRegistries: a.insecureRegistries}, streamOptions{stdin: f.interactive, tty: f.tty, attached: true, bulk: true})
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	c.Flags().SetInterspersed(false) // flags after IMAGE belong to the command
	addRunFlags(c, &f)
	return c
}

// addRunFlags registers docker run's flags that vmbox supports on c.
func addRunFlags(c *cobra.Command, f *runFlags) {
	fl := c.Flags()
	// A flag named --name on run is the container's, as in docker run; the
	// instance is then chosen with VMBOX_INSTANCE.
	fl.StringVar(&f.name, "name", "", "assign a name to the container")
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label KEY=VALUE on the container (repeatable)")
	fl.StringArrayVar(&f.labelFiles, "label-file", nil, "read labels from a file of KEY=VALUE lines")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: PATH[:OPTIONS], options as mount's (size=64m,mode=755,exec) (repeatable)")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a volume: NAME:PATH[:ro], or PATH for an anonymous one (repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount a volume or a tmpfs: type=volume|tmpfs,source=NAME,target=PATH[,readonly] (repeatable)")
	fl.StringArrayVar(&f.volumesFrom, "volumes-from", nil, "mount the volumes of another container: NAME[:ro|:rw] (repeatable)")
	fl.StringVar(&f.restart, "restart", "no", "restart policy when the container exits: no, always, unless-stopped or on-failure[:MAX-RETRIES]")
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open and forward it")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a terminal")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set environment variables (NAME=value, or NAME to take it from here)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user (name|uid[:group|gid])")
	// -h is --hostname, as in docker run, so help is --help alone.
	fl.Bool("help", false, "help for run")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fl.StringVar(&f.domainname, "domainname", "", "container NIS domain name")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 32m, 1g)")
	fl.StringVar(&f.cpus, "cpus", "", "number of CPUs (e.g. 1.5)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (0: unlimited)")
	fl.BoolVar(&f.privileged, "privileged", false, "give the container all capabilities and devices' views")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root file system read-only")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fl.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	fl.StringVar(&f.platform, "platform", "", "platform of the image (e.g. linux/arm64)")
	fl.BoolVar(&f.noStart, "no-start", false, "fail instead of starting the VM when it is not running")
	addNetworkFlags(c, &f.net)
}

func (f *runFlags) config(args []string, entrypointSet bool) (api.ContainerConfig, error) {
	cfg := api.ContainerConfig{
		Image: args[0], Name: f.name, WorkingDir: f.workdir, User: f.user,
		Hostname: f.hostname, Domainname: f.domainname,
		Tty: f.tty, OpenStdin: f.interactive, AutoRemove: f.rm, PidsLimit: f.pidsLimit,
		Privileged: f.privileged, ReadOnly: f.readOnly, Platform: f.platform,
	}
	if len(args) > 1 {
		cfg.Cmd = args[1:]
	}
	if entrypointSet {
		cfg.EntrypointSet = true
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	policy, err := api.ParseRestartPolicy(f.restart)
	if err != nil {
		return cfg, usageError("%v", err)
	}
	if f.rm && !policy.IsNone() {
		return cfg, usageError("Conflicting options: --restart and --rm")
	}
	if !policy.IsNone() {
		cfg.RestartPolicy = policy
	}
	switch f.pull {
	case "missing", "always", "never":
		cfg.Pull = f.pull
	default:
		return cfg, usageError("invalid --pull %q: use missing, always or never", f.pull)
	}
	if err := f.net.apply(&cfg); err != nil {
		return cfg, err
	}
	if f.memory != "" {
		m, err := parseSize(f.memory, "")
		if err != nil || m < 6<<20 {
			return cfg, usageError("invalid --memory %q: use a size of at least 6m, like 32m or 1g", f.memory)
		}
		cfg.Memory = m
	}
	if f.cpus != "" {
		var n float64
		if _, err := fmt.Sscanf(f.cpus, "%g", &n); err != nil || n <= 0 {
			return cfg, usageError("invalid --cpus %q: use a positive number like 0.5 or 2", f.cpus)
		}
		cfg.NanoCPUs = int64(n * 1e9)
	}
	if f.pidsLimit < 0 {
		return cfg, usageError("invalid --pids-limit %d: use a positive number, or 0 for no limit", f.pidsLimit)
	}
	if cfg.Labels, err = collectLabels(f.labelFiles, f.labels); err != nil {
		return cfg, err
	}
	for _, t := range f.tmpfs {
		path, opts, _ := strings.Cut(t, ":")
		if !strings.HasPrefix(path, "/") {
			return cfg, usageError("invalid --tmpfs %q: the path must be absolute", t)
		}
		if cfg.Tmpfs == nil {
			cfg.Tmpfs = map[string]string{}
		}
		cfg.Tmpfs[path] = opts
	}
	if err := f.applyMounts(&cfg); err != nil {
		return cfg, err
	}
	env, err := collectEnv(f.envFiles, f.env)
	if err != nil {
		return cfg, err
	}
	cfg.Env = env
	if cfg.Tty && cfg.ConsoleSize == [2]uint{} {
		cfg.ConsoleSize = terminalSize()
	}
	return cfg, nil
}

func usageError(format string, args ...any) error {
	return &ExitError{Code: api.ExitEngineError, Message: fmt.Sprintf(format, args...)}
}

// collectEnv reads --env-file files, then --env values; "NAME" alone takes
// NAME's value from this process's environment (and is dropped when unset),
// as Docker does.
func collectEnv(files, vars []string) ([]string, error) {
	var env []string
	add := func(v string) {
		if v == "" {
			return
		}
		if !strings.Contains(v, "=") {
			if val, ok := os.LookupEnv(v); ok {
				env = append(env, v+"="+val)
			}
			return
		}
		env = append(env, v)
	}
	for _, file := range files {
		lines, err := readDefinitions("--env-file", file)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			add(l)
		}
	}
	for _, v := range vars {
		if strings.HasPrefix(v, "=") {
			return nil, usageError("invalid --env %q: variable name is empty", v)
		}
		add(v)
	}
	return env, nil
}

// connectOrStart reaches the agent, starting the instance first when it is
// not running, as a desktop user expects; noStart refuses instead.
func (a *app) connectOrStart(ctx context.Context, noStart bool) (*sshclient.Client, error) {
	if a.host != "" || noStart {
		return a.connect(ctx)
	}
	inst, err := a.instance()
	if err == nil && lifecycle.StatusOf(inst).State == lifecycle.StateRunning {
		return a.connect(ctx)
	}
	fmt.Fprintf(a.stderr, "vmbox: instance %q is not running; starting it\n", a.name)
	if err := a.startInstance(ctx, lifecycle.Settings{}, defaultStartTimeout); err != nil {
		return nil, err
	}
	return a.connect(ctx)
}

// readDefinitions reads a --env-file or --label-file: its KEY=VALUE (or
// KEY) lines, blank lines and # comments skipped.
func readDefinitions(flag, file string) ([]string, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, usageError("%s: %v", flag, err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "=") {
			return nil, usageError("%s %s line %d: variable name is empty", flag, file, line)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, usageError("%s %s: %v", flag, file, err)
	}
	return out, nil
}

// collectLabels reads --label-file files, then --label values, into the
// container's labels (a later KEY wins; KEY alone is an empty value).
func collectLabels(files, values []string) (map[string]string, error) {
	var all []string
	for _, file := range files {
		lines, err := readDefinitions("--label-file", file)
		if err != nil {
			return nil, err
		}
		all = append(all, lines...)
	}
	return keyValues("--label", append(all, values...))
}

// applyMounts reads -v, --mount and --volumes-from. A bind source is a
// path of this machine: a relative one is made absolute, and a Windows
// one (C:\src) becomes the path the VM sees it at (instance.GuestPath).
func (f *runFlags) applyMounts(cfg *api.ContainerConfig) error {
	add := func(m api.Mount, err error) error {
		if err != nil {
			return usageError("%v", err)
		}
		if m.Type == api.MountBind && m.Source != api.DockerSocket {
			abs, err := filepath.Abs(m.Source)
			if err != nil {
				return usageError("bind source %s: %v", m.Source, err)
			}
			m.Source = instance.GuestPath(abs)
		}
		cfg.Mounts = append(cfg.Mounts, m)
		return nil
	}
	for _, v := range f.volumes {
		if err := add(api.ParseVolumeSpec(api.WindowsVolumeSpec(v))); err != nil {
			return err
		}
	}
	for _, v := range f.mounts {
		if err := add(api.ParseMountSpec(v)); err != nil {
			return err
		}
	}
	cfg.VolumesFrom = f.volumesFrom
	return nil
}

// checkBinds refuses a bind source of this machine that no folder shared
// into the VM holds: the VM could only mount an empty directory of its
// own there. The Docker socket is the exception, as in Docker Desktop:
// /var/run/docker.sock is the VM's own Docker API. With --host the agent
// runs on this machine and sees its paths as they are.
func (a *app) checkBinds(cfg api.ContainerConfig) error {
	if a.host != "" {
		return nil
	}
	var conf instance.Config
	if inst, err := a.instance(); err == nil {
		conf = inst.Config
	}
	shares := conf.Shares()
	for _, m := range cfg.Mounts {
		if m.Type != api.MountBind || m.Source == api.DockerSocket {
			continue
		}
		if _, ok := instance.ShareOf(shares, m.Source); !ok {
			var names []string
			for _, sh := range shares {
				names = append(names, sh.HostPath)
			}
			return usageError("bind source %s is not in a folder shared with the VM (%s): share it with vmbox start --mount DIR, then vmbox restart", m.Source, strings.Join(names, ", "))
		}
	}
	return nil
}
