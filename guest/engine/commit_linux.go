package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/image"
)

// CommitOptions say how Commit makes an image of a container.
type CommitOptions struct {
	// Tags name the image (name[:tag]); none leaves it unnamed.
	Tags            []string
	Author, Comment string
	// Changes are Dockerfile instructions applied to the image's
	// configuration: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME,
	// WORKDIR, STOPSIGNAL.
	Changes []string
	// Pause freezes the container while its files are read, where the
	// freezer is available.
	Pause bool
	// Config, when set, is the image's configuration as it is (a build
	// step's), instead of the container's.
	Config *v1.Config
	// CreatedBy is the history entry's command (default: a commit note).
	CreatedBy string
	// CacheKey makes the image part of the build cache.
	CacheKey string
}

// Commit makes an image of a container: its image plus one layer of what
// it changed, with its configuration (command, environment, working
// directory, user, ports, labels) and opts.Changes.
func (e *Engine) Commit(ref string, opts CommitOptions) (*image.Image, error) {
	if err := CheckChanges(opts.Changes); err != nil {
		return nil, err
	}
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	rec := c.rec
	spec := c.spec()
	paused := false
	if opts.Pause && c.rc != nil && !c.rec.State.Paused {
		paused = c.rc.Freeze(true) == nil
	}
	c.mountedFS++ // not started or removed while its upper directory is read
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if paused && c.rc != nil {
			c.rc.Freeze(false)
		}
		c.mountedFS--
		c.mu.Unlock()
	}()
	cfgChange := func(cfg *v1.Config) {
		cfg.Cmd, cfg.Entrypoint = rec.Cmd, rec.Entrypoint
		cfg.Env, cfg.WorkingDir, cfg.User = rec.Env, rec.WorkingDir, rec.User
		if len(rec.Config.Labels) > 0 {
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			maps.Copy(cfg.Labels, rec.Config.Labels)
		}
		for _, p := range rec.Config.ExposedPorts {
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(container.WriteDiff(spec, pw)) }()
	img, err := e.opts.Images.Commit(image.CommitOptions{
		Parent: rec.ImageID,
		Layer:  pr,
		Config: func(cfg *v1.Config) {
			if opts.Config != nil {
				*cfg = *opts.Config
				return
			}
			cfgChange(cfg)
			applyChanges(cfg, opts.Changes) // checked above
		},
		CreatedBy: cmp.Or(opts.CreatedBy, "/bin/sh -c #(nop) commit "+rec.Name),
		Comment:   opts.Comment,
		Author:    opts.Author,
		Tags:      opts.Tags,
		CacheKey:  opts.CacheKey,
	})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return nil, err
	}
	e.events.publish(Event{Type: "container", Action: "commit", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "imageID": img.ID}})
	return img, nil
}

// CheckChanges refuses Dockerfile instructions a commit cannot apply.
func CheckChanges(changes []string) error {
	return applyChanges(&v1.Config{}, changes)
}

// applyChanges applies docker commit's --change instructions.
func applyChanges(cfg *v1.Config, changes []string) error {
	for _, ch := range changes {
		instr, rest, _ := strings.Cut(strings.TrimSpace(ch), " ")
		rest = strings.TrimSpace(rest)
		bad := func(why string) error {
			return fmt.Errorf("%w: --change %q: %s", ErrInvalid, ch, why)
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			cfg.Cmd = commandForm(rest)
		case "ENTRYPOINT":
			cfg.Entrypoint = commandForm(rest)
		case "ENV":
			kvs, err := keyValuePairs(rest)
			if err != nil {
				return bad(err.Error())
			}
			cfg.Env = container.MergeEnv(cfg.Env, kvs)
		case "LABEL":
			kvs, err := keyValuePairs(rest)
			if err != nil {
				return bad(err.Error())
			}
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range kvs {
				k, v, _ := strings.Cut(kv, "=")
				cfg.Labels[k] = v
			}
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				if cfg.ExposedPorts == nil {
					cfg.ExposedPorts = map[string]struct{}{}
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "USER":
			cfg.User = rest
		case "WORKDIR":
			cfg.WorkingDir = rest
		case "STOPSIGNAL":
			cfg.StopSignal = rest
		case "VOLUME":
			paths := commandForm(rest)
			if !strings.HasPrefix(rest, "[") {
				paths = strings.Fields(rest)
			}
			for _, p := range paths {
				if cfg.Volumes == nil {
					cfg.Volumes = map[string]struct{}{}
				}
				cfg.Volumes[p] = struct{}{}
			}
		default:
			return bad("only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL can be changed")
		}
	}
	return nil
}

// commandForm reads an instruction's command: the exec form (a JSON
// array) as it is, the shell form run by /bin/sh -c.
func commandForm(s string) []string {
	var argv []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &argv) == nil {
		return argv
	}
	return []string{"/bin/sh", "-c", s}
}

// keyValuePairs reads ENV's and LABEL's "k=v k2=v2" (values may be
// double-quoted) or the old "k v" form.
func keyValuePairs(s string) ([]string, error) {
	if !strings.Contains(strings.Fields(s + " x")[0], "=") {
		k, v, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("want KEY=VALUE or KEY VALUE")
		}
		return []string{k + "=" + strings.TrimSpace(v)}, nil
	}
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("want KEY=VALUE pairs")
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote")
			}
			v, s = rest[1:end+1], rest[end+2:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}
