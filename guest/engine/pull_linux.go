package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/image"
)

// PullOptions are what one Create or Run needs to pull its image: they come
// with the request (the user's credentials on the host), not with the
// engine.
type PullOptions struct {
	// Auth is the credential for the image's registry; nil pulls
	// anonymously.
	Auth *api.RegistryAuth
	// InsecureRegistries are hosts (host[:port]) that may be reached over
	// plain HTTP.
	InsecureRegistries []string
	// Progress, which may be nil, receives the pull's progress.
	Progress func(api.PullProgress)
}

// Pull fetches ref into the image store for platform ("os/arch[/variant]";
// empty for the VM's own).
func (e *Engine) Pull(ctx context.Context, ref, platform string, pull PullOptions) (*image.Image, error) {
	if e.isClosed() {
		return nil, ErrClosed
	}
	opts := e.opts.Pull
	opts.Platform = platform
	if pull.Auth != nil {
		opts.Auth = pull.Auth
	}
	opts.InsecureRegistries = append(append([]string{}, opts.InsecureRegistries...), pull.InsecureRegistries...)
	return e.opts.Images.Pull(ctx, ref, opts, pull.Progress)
}

// image finds the container's image, pulling it as cfg.Pull says: the
// engine alone decides whether a container's image is pulled.
func (e *Engine) image(ctx context.Context, cfg api.ContainerConfig, pull PullOptions) (*image.Image, error) {
	switch cfg.Pull {
	case "always":
		return e.Pull(ctx, cfg.Image, cfg.Platform, pull)
	case "", "missing":
		img, err := e.opts.Images.Get(cfg.Image)
		if errors.Is(err, image.ErrNotFound) {
			return e.Pull(ctx, cfg.Image, cfg.Platform, pull)
		}
		return img, err
	case "never":
		return e.opts.Images.Get(cfg.Image)
	}
	return nil, fmt.Errorf("%w: pull policy %q (missing, always or never)", ErrInvalid, cfg.Pull)
}
