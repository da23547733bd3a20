package engine

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Create creates a container from cfg, pulling its image first when it is
// missing and cfg.Pull allows ("missing", the default; "always"; "never").
// pull says how to reach the registry and where the progress goes.
func (e *Engine) Create(ctx context.Context, cfg api.ContainerConfig, pull PullOptions) (api.CreateReply, error) {
	if e.isClosed() {
		return api.CreateReply{}, ErrClosed
	}
	if cfg.Image == "" {
		return api.CreateReply{}, fmt.Errorf("%w: no image given", ErrInvalid)
	}
	name := stripSlash(cfg.Name)
	if name != "" && !validName.MatchString(name) {
		return api.CreateReply{}, fmt.Errorf("%w: invalid container name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, cfg.Name)
	}
	if cfg.Memory < 0 || cfg.NanoCPUs < 0 || cfg.PidsLimit < 0 {
		return api.CreateReply{}, fmt.Errorf("%w: negative resource limit", ErrInvalid)
	}
	if cfg.Memory > 0 && cfg.Memory < 6<<20 {
		return api.CreateReply{}, fmt.Errorf("%w: minimum memory limit allowed is 6MB", ErrInvalid)
	}
	for path, opts := range cfg.Tmpfs {
		if !strings.HasPrefix(path, "/") || path == "/" {
			return api.CreateReply{}, fmt.Errorf("%w: invalid tmpfs path %q: it must be absolute and not /", ErrInvalid, path)
		}
		if err := container.CheckTmpfsOptions(opts); err != nil {
			return api.CreateReply{}, fmt.Errorf("%w: --tmpfs %s: %w", ErrInvalid, path, err)
		}
	}
	if err := cfg.RestartPolicy.Validate(); err != nil {
		return api.CreateReply{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if cfg.AutoRemove && !cfg.RestartPolicy.IsNone() {
		return api.CreateReply{}, fmt.Errorf("%w: can't create 'AutoRemove' container with restart policy", ErrInvalid)
	}
	img, err := e.image(ctx, cfg, pull)
	if err != nil {
		return api.CreateReply{}, err
	}

	rec := record{Config: cfg, ImageID: img.ID, Layers: img.Layers, Created: time.Now().UTC()}
	rec.Config.Name = name
	rec.ImageExposedPorts = img.Config.ExposedPorts
	warnings, err := e.resolveNetworkMode(cfg, &rec)
	if err != nil {
		return api.CreateReply{}, err
	}
	if rec.Mounts, err = e.resolveMounts(&rec.Config, img.Config.Volumes); err != nil {
		return api.CreateReply{}, err
	}
	for path, opts := range rec.Config.Tmpfs {
		if err := container.CheckTmpfsOptions(opts); err != nil {
			return api.CreateReply{}, fmt.Errorf("%w: --mount type=tmpfs %s: %w", ErrInvalid, path, err)
		}
	}
	for _, h := range cfg.ExtraHosts {
		if name, ip, ok := strings.Cut(h, ":"); !ok || name == "" || (ip != "host-gateway" && !validIP(ip)) {
			return api.CreateReply{}, fmt.Errorf("%w: invalid extra host %q: want name:ip", ErrInvalid, h)
		}
	}
	for _, s := range cfg.DNS {
		if !validIP(s) {
			return api.CreateReply{}, fmt.Errorf("%w: %q is not an IP address (--dns)", ErrInvalid, s)
		}
	}
	rec.Entrypoint = img.Config.Entrypoint
	if cfg.EntrypointSet || cfg.Entrypoint != nil {
		rec.Entrypoint = cfg.Entrypoint
	}
	rec.Cmd = img.Config.Cmd
	if cfg.Cmd != nil {
		rec.Cmd = cfg.Cmd
	} else if cfg.EntrypointSet || cfg.Entrypoint != nil {
		rec.Cmd = nil // Docker: a new entrypoint drops the image's command
	}
	argv := append(append([]string{}, rec.Entrypoint...), rec.Cmd...)
	if len(argv) == 0 {
		return api.CreateReply{}, fmt.Errorf("%w: no command specified", ErrInvalid)
	}
	rec.Path, rec.Args = argv[0], argv[1:]
	rec.Env = container.MergeEnv(img.Config.Env, cfg.Env)
	rec.WorkingDir = img.Config.WorkingDir
	if cfg.WorkingDir != "" {
		rec.WorkingDir = cfg.WorkingDir
	}
	rec.User = img.Config.User
	if cfg.User != "" {
		rec.User = cfg.User
	}
	rec.State = api.State{Status: statusCreated}

	e.mu.Lock()
	if e.isClosed() {
		e.mu.Unlock()
		return api.CreateReply{}, ErrClosed
	}
	rec.ID = e.newID()
	if name == "" {
		name = e.generateName()
	} else if other, ok := e.byName[name]; ok {
		e.mu.Unlock()
		return api.CreateReply{}, fmt.Errorf("%w: the container name %q is already in use by container %q", ErrConflict, "/"+name, other.rec.ID)
	}
	rec.Name = name
	rec.Hostname = cfg.Hostname
	if rec.Hostname == "" {
		rec.Hostname = rec.ID[:12]
	}
	c := newContainer(e, rec)
	c.next = newRun()
	// Registered before the directory exists so that the name is taken;
	// nothing can start it until Create returns its ID.
	e.byID[rec.ID] = c
	e.byName[name] = c
	e.mu.Unlock()

	err = os.Mkdir(c.dir, 0o700)
	if err == nil {
		c.mu.Lock()
		err = c.persist()
		if err == nil {
			e.events.publish(c.containerEvent("create", nil))
		}
		c.mu.Unlock()
	}
	if err != nil {
		e.mu.Lock()
		delete(e.byID, rec.ID)
		delete(e.byName, name)
		e.mu.Unlock()
		os.RemoveAll(c.dir)
		return api.CreateReply{}, fmt.Errorf("create container: %w", err)
	}
	if warnings == nil {
		warnings = []string{}
	}
	return api.CreateReply{ID: rec.ID, Warnings: warnings}, nil
}

func stripSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
