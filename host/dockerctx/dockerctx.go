// Package dockerctx adds contexts to the docker CLI's context store, so
// that an instance's Docker API is one `docker --context NAME` away. It
// writes the store's files itself, as `docker context create` would: the
// docker CLI need not be installed when vmbox starts, and its
// configuration (config.json, where the current context is chosen) is
// never written. `vmbox delete` takes out the context its instance added.
//
// The store's layout (github.com/docker/cli, cli/context/store): each
// context is DIR/contexts/meta/<hex SHA-256 of its name>/meta.json, and
// DIR is $DOCKER_CONFIG, else ~/.docker.
package dockerctx

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vmbox/vmbox/host/instance"
)

// Context is a docker CLI context whose Docker endpoint is Host.
type Context struct {
	Name        string
	Description string
	// Host is a DOCKER_HOST value: unix:///path or npipe:////./pipe/NAME.
	Host string
}

// meta is meta.json, with the docker CLI's field names and order.
type meta struct {
	Name      string
	Metadata  metadata
	Endpoints map[string]endpoint
}

type metadata struct {
	Description string `json:",omitempty"`
}

type endpoint struct {
	Host          string
	SkipTLSVerify bool
}

// dockerEndpoint is the endpoint name of the Docker API in a context.
const dockerEndpoint = "docker"

// ConfigDir is the docker CLI's configuration directory: $DOCKER_CONFIG,
// else .docker in the home directory.
func ConfigDir() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the docker CLI's configuration (set DOCKER_CONFIG): %w", err)
	}
	return filepath.Join(home, ".docker"), nil
}

// metaPath is where the store under dir keeps context name.
func metaPath(dir, name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(dir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
}

// Ensure adds c to the store under dir unless a context of its name is
// there already, which it leaves as it is whatever it holds. It reports
// whether it added c and the Docker host of the context now under c's
// name: c.Host unless another was there.
func Ensure(dir string, c Context) (created bool, host string, err error) {
	path := metaPath(dir, c.Name)
	b, err := os.ReadFile(path)
	if err == nil {
		var m meta
		if err := json.Unmarshal(b, &m); err != nil {
			return false, "", fmt.Errorf("docker context %q exists, but its %s is unreadable: %w", c.Name, path, err)
		}
		return false, m.Endpoints[dockerEndpoint].Host, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, "", fmt.Errorf("read docker context %q: %w", c.Name, err)
	}
	b, err = json.Marshal(meta{
		Name:      c.Name,
		Metadata:  metadata{Description: c.Description},
		Endpoints: map[string]endpoint{dockerEndpoint: {Host: c.Host}},
	})
	if err != nil {
		return false, "", fmt.Errorf("encode docker context %q: %w", c.Name, err)
	}
	// The modes the docker CLI gives its own store.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, "", fmt.Errorf("create docker context %q: %w", c.Name, err)
	}
	if err := instance.WriteFileAtomic(path, b, 0o644); err != nil {
		return false, "", fmt.Errorf("create docker context %q: %w", c.Name, err)
	}
	return true, c.Host, nil
}

// ErrCurrent is what Remove returns (wrapped) for a context that is the
// docker CLI's current one: removing it would leave every docker command
// failing on a missing context, and config.json is the user's to change.
var ErrCurrent = errors.New("it is the docker CLI's current context")

// Remove takes context name out of the store under dir if its Docker
// endpoint is host, which is how an instance knows the context is the one
// it added: a context of the name with another endpoint is the user's and
// stays. It reports whether it removed one. A context that is the current
// one ($DOCKER_CONTEXT, else config.json's currentContext) stays too, with
// ErrCurrent.
func Remove(dir, name, host string) (removed bool, err error) {
	path := metaPath(dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read docker context %q: %w", name, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || m.Endpoints[dockerEndpoint].Host != host {
		return false, nil
	}
	current := os.Getenv("DOCKER_CONTEXT")
	if current == "" {
		if current, err = currentContext(dir); err != nil {
			return false, err
		}
	}
	if current == name {
		return false, fmt.Errorf("docker context %q left in place: %w (docker context use default, then docker context rm %s)", name, ErrCurrent, name)
	}
	// The store keeps TLS material beside the metadata, under the same
	// digest; a context vmbox made has none, but one the user changed may.
	digest := filepath.Base(filepath.Dir(path))
	if err := os.RemoveAll(filepath.Join(dir, "contexts", "tls", digest)); err != nil {
		return false, fmt.Errorf("remove docker context %q: %w", name, err)
	}
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		return false, fmt.Errorf("remove docker context %q: %w", name, err)
	}
	return true, nil
}

// currentContext is the context config.json under dir names as current
// ("" when there is no such file or field).
func currentContext(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the docker CLI's configuration: %w", err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("read the docker CLI's configuration %s: %w", filepath.Join(dir, "config.json"), err)
	}
	return cfg.CurrentContext, nil
}
