package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/registry"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/build"
	"github.com/vmbox/vmbox/guest/engine"
)

// imageBuild answers POST /build (the classic builder's protocol): the
// body is the context as a tar (plain or gzip), the output streams as
// {"stream": ...} messages, the image's ID as {"aux": {"ID": ...}}, and a
// failure as an errorDetail message.
func (s *Server) imageBuild(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("remote") != "" {
		return fmt.Errorf("%w: builds from a remote context (git, URL) are not supported", errNotImplemented)
	}
	opts := build.Options{Dockerfile: q.Get("dockerfile"), Tags: q["t"], Target: q.Get("target"), Pull: boolParam(r, "pull"), NoCache: boolParam(r, "nocache"),
		PullOptions: engine.PullOptions{InsecureRegistries: s.opts.InsecureRegistries}}
	if v := q.Get("buildargs"); v != "" {
		var args map[string]*string
		if err := json.Unmarshal([]byte(v), &args); err != nil {
			return fmt.Errorf("%w: invalid buildargs: %w", errBadRequest, err)
		}
		opts.BuildArgs = map[string]string{}
		for k, v := range args {
			if v != nil {
				opts.BuildArgs[k] = *v
			} else if env, ok := os.LookupEnv(k); ok {
				opts.BuildArgs[k] = env
			}
		}
	}
	if h := r.Header.Get("X-Registry-Config"); h != "" {
		// base64url JSON of registry -> credentials, as the CLI sends it.
		raw, err := base64.URLEncoding.DecodeString(h)
		if err != nil {
			raw, err = base64.StdEncoding.DecodeString(h)
		}
		var auths map[string]registry.AuthConfig
		if err != nil || json.Unmarshal(raw, &auths) != nil {
			return fmt.Errorf("%w: invalid X-Registry-Config header", errBadRequest)
		}
		opts.Auths = map[string]api.RegistryAuth{}
		for host, a := range auths {
			host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/v1/")
			if host == "index.docker.io" || host == "registry-1.docker.io" {
				host = "docker.io"
			}
			opts.Auths[host] = api.RegistryAuth{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &opts.Labels); err != nil {
			return fmt.Errorf("%w: invalid labels: %w", errBadRequest, err)
		}
	}
	// On the data disk: the VM's /tmp is memory.
	tmp := filepath.Join(s.opts.DataRoot, "build-tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(tmp, "context-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := build.UnpackContext(r.Body, dir); err != nil {
		return fmt.Errorf("%w: build context: %w", errBadRequest, err)
	}
	opts.Context = dir
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := &streamMessages{enc: json.NewEncoder(flushing(w)), quiet: boolParam(r, "q")}
	b := &build.Builder{Engine: s.eng, Images: s.imgs}
	id, err := b.Build(r.Context(), opts, out)
	if err != nil {
		msg := errorMessage(err)
		detail := map[string]any{"message": msg}
		var se *build.StepError
		if errors.As(err, &se) {
			detail["code"] = se.Code
		}
		out.encode(map[string]any{"errorDetail": detail, "error": msg})
		return nil
	}
	out.encode(map[string]any{"aux": map[string]string{"ID": id}})
	if out.quiet {
		out.encode(map[string]string{"stream": id + "\n"})
	}
	return nil
}

// streamMessages turns the builder's text into {"stream": ...} messages.
type streamMessages struct {
	mu    sync.Mutex
	enc   *json.Encoder
	quiet bool
}

func (m *streamMessages) Write(p []byte) (int, error) {
	if m.quiet {
		return len(p), nil
	}
	return len(p), m.encode(map[string]string{"stream": string(p)})
}

func (m *streamMessages) encode(v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enc.Encode(v)
}

// buildPrune answers POST /build/prune: the build cache no container
// uses goes.
func (s *Server) buildPrune(w http.ResponseWriter, r *http.Request) error {
	ids, size, err := s.imgs.PruneBuildCache(s.eng.InUse)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": nonNil(ids), "SpaceReclaimed": size})
}
