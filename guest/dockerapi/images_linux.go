package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
	gimage "github.com/vmbox/vmbox/guest/image"
)

func imageSummary(im api.ImageSummary) image.Summary {
	return image.Summary{
		ID:          im.ID,
		RepoTags:    nonNil(im.RepoTags),
		RepoDigests: nonNil(im.RepoDigests),
		Created:     im.Created,
		Size:        im.Size,
		SharedSize:  -1,
		Containers:  -1,
		Labels:      nonNilMap(im.Labels),
	}
}

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate("reference", "dangling", "label"); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	// The 20.10 CLI still sends the old filter parameter for
	// "docker images NAME".
	if f := r.URL.Query().Get("filter"); f != "" {
		filters["reference"] = append(filters["reference"], f)
	}
	imgs, err := s.imgs.List()
	if err != nil {
		return err
	}
	out := []image.Summary{}
	for _, im := range imgs {
		if im, ok := matchImage(im, filters); ok {
			out = append(out, imageSummary(im))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// matchImage applies the reference (a name pattern, with or without tag)
// and dangling filters. With a reference filter only the names that match
// are kept, as Docker lists them.
func matchImage(im api.ImageSummary, f api.Filters) (api.ImageSummary, bool) {
	for _, d := range f["dangling"] {
		if (d == "true" || d == "1") != (len(im.RepoTags) == 0) {
			return im, false
		}
	}
	if !api.MatchLabels(im.Labels, f["label"]) {
		return im, false
	}
	patterns := f["reference"]
	if len(patterns) == 0 {
		return im, true
	}
	matches := func(name string) bool {
		repo := name
		if i := strings.LastIndexAny(name, ":@"); i > strings.LastIndex(name, "/") {
			repo = name[:i]
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
			if ok, _ := path.Match(p, repo); ok {
				return true
			}
		}
		return false
	}
	tags := slices.DeleteFunc(slices.Clone(im.RepoTags), func(t string) bool { return !matches(t) })
	digests := slices.DeleteFunc(slices.Clone(im.RepoDigests), func(d string) bool { return !matches(d) })
	if len(tags) == 0 && len(digests) == 0 {
		return im, false
	}
	im.RepoTags, im.RepoDigests = tags, digests
	return im, true
}

// registryAuth decodes the X-Registry-Auth header.
func registryAuth(r *http.Request) (*api.RegistryAuth, error) {
	h := r.Header.Get(registry.AuthHeader)
	if h == "" {
		return nil, nil
	}
	ac, err := authconfig.Decode(h)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid X-Registry-Auth header: %w", errBadRequest, err)
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return nil, nil
	}
	return &api.RegistryAuth{Username: ac.Username, Password: ac.Password, Auth: ac.Auth, IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}, nil
}

// imageCreate pulls (fromImage) and streams the progress as JSON
// messages.
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		return fmt.Errorf("%w: POST /images/create?fromSrc (docker import) is not implemented by vmbox", errNotImplemented)
	}
	ref := q.Get("fromImage")
	if ref == "" {
		return fmt.Errorf("%w: fromImage is required", errBadRequest)
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	auth, err := registryAuth(r)
	if err != nil {
		return err
	}
	return progressStream(w, func(progress func(api.PullProgress)) error {
		img, err := s.eng.Pull(r.Context(), ref, q.Get("platform"), engine.PullOptions{Auth: auth, InsecureRegistries: s.opts.InsecureRegistries, Progress: progress})
		if err != nil {
			return err
		}
		s.imageEvent("pull", img.ID, ref)
		return nil
	})
}

// progressStream runs op (a pull or a push) and streams its progress as
// the API's JSON messages. An error before any progress is answered with
// its status code; after it, as an errorDetail message, as Docker does.
func progressStream(w http.ResponseWriter, op func(progress func(api.PullProgress)) error) error {
	var (
		mu      sync.Mutex
		started bool
	)
	enc := json.NewEncoder(flushing(w))
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		}
	}
	err := op(func(p api.PullProgress) {
		mu.Lock()
		defer mu.Unlock()
		begin()
		enc.Encode(jsonMessage(p))
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil && !started {
		return err
	}
	if err != nil {
		msg := errorMessage(err)
		enc.Encode(map[string]any{"errorDetail": map[string]string{"message": msg}, "error": msg})
	}
	begin()
	return nil
}

// jsonMessage is a progress line in the API's JSON message shape.
func jsonMessage(p api.PullProgress) map[string]any {
	m := map[string]any{}
	if p.Status != "" {
		m["status"] = p.Status
	}
	if p.ID != "" {
		m["id"] = p.ID
	}
	if p.ProgressDetail != nil {
		m["progressDetail"] = p.ProgressDetail
	}
	if p.Error != "" {
		m["errorDetail"] = map[string]string{"message": p.Error}
		m["error"] = p.Error
	}
	return m
}

// imageGetByName serves GET /images/{name}/json, /history and /get: the
// name may hold slashes, so the action is its last element.
func (s *Server) imageGetByName(w http.ResponseWriter, r *http.Request) error {
	full := r.PathValue("name")
	switch {
	case strings.HasSuffix(full, "/json"):
		return s.imageInspect(w, strings.TrimSuffix(full, "/json"))
	case strings.HasSuffix(full, "/history"):
		return s.imageHistory(w, strings.TrimSuffix(full, "/history"))
	case strings.HasSuffix(full, "/get"):
		return s.imageSave(w, []string{strings.TrimSuffix(full, "/get")})
	}
	return fmt.Errorf("%w: GET /images/%s is not implemented by vmbox", errNotImplemented, full)
}

func (s *Server) imagePostByName(w http.ResponseWriter, r *http.Request) error {
	full := r.PathValue("name")
	if name, ok := strings.CutSuffix(full, "/tag"); ok {
		repo := r.URL.Query().Get("repo")
		if repo == "" {
			return fmt.Errorf("%w: repository name (repo parameter) is required", errBadRequest)
		}
		dst := repo
		if tag := r.URL.Query().Get("tag"); tag != "" {
			dst += ":" + tag
		}
		if err := s.imgs.Tag(name, dst); err != nil {
			if errors.Is(err, gimage.ErrNotFound) {
				return err
			}
			return fmt.Errorf("%w: %w", errBadRequest, err)
		}
		if im, err := s.imgs.Get(dst); err == nil {
			s.imageEvent("tag", im.ID, dst)
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	if name, ok := strings.CutSuffix(full, "/push"); ok {
		return s.imagePush(w, r, name)
	}
	return fmt.Errorf("%w: POST /images/%s is not implemented by vmbox", errNotImplemented, full)
}

// imagePush pushes name (with the tag parameter) and streams the progress
// as pulls do.
func (s *Server) imagePush(w http.ResponseWriter, r *http.Request, name string) error {
	ref := name
	if tag := r.URL.Query().Get("tag"); tag != "" {
		ref += ":" + tag
	}
	auth, err := registryAuth(r)
	if err != nil {
		return err
	}
	return progressStream(w, func(progress func(api.PullProgress)) error {
		digest, err := s.imgs.Push(r.Context(), ref, gimage.PullOptions{Auth: auth, InsecureRegistries: s.opts.InsecureRegistries}, progress)
		if err != nil {
			return err
		}
		s.imageEvent("push", digest, ref)
		return nil
	})
}

func (s *Server) imageInspect(w http.ResponseWriter, name string) error {
	im, err := s.imgs.Inspect(name)
	if err != nil {
		return err
	}
	cfg := &dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{
		User: im.Config.User, Env: im.Config.Env, Entrypoint: im.Config.Entrypoint, Cmd: im.Config.Cmd,
		WorkingDir: im.Config.WorkingDir, ExposedPorts: map[string]struct{}{}, Labels: nonNilMap(im.Config.Labels),
	}}
	for _, p := range im.Config.ExposedPorts {
		cfg.ExposedPorts[p] = struct{}{}
	}
	return writeJSON(w, http.StatusOK, image.InspectResponse{
		ID:           im.ID,
		RepoTags:     nonNil(im.RepoTags),
		RepoDigests:  nonNil(im.RepoDigests),
		Created:      im.Created,
		Config:       cfg,
		Architecture: im.Architecture,
		Os:           im.Os,
		Size:         im.Size,
		RootFS:       image.RootFS{Type: im.RootFS.Type, Layers: im.RootFS.Layers},
	})
}

func (s *Server) imageDelete(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	res, err := s.imgs.Remove([]string{name}, boolParam(r, "force"), s.eng.InUse)
	if err != nil {
		return err
	}
	out := []image.DeleteResponse{}
	for _, d := range res {
		out = append(out, image.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
		if d.Untagged != "" {
			s.imageEvent("untag", d.Untagged, d.Untagged)
		} else {
			s.imageEvent("delete", d.Deleted, d.Deleted)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) error {
	loaded, err := s.imgs.Load(r.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, name := range loaded {
		s.imageEvent("load", name, name)
		what := "Loaded image: "
		if strings.HasPrefix(name, "sha256:") {
			what = "Loaded image ID: "
		}
		enc.Encode(map[string]string{"stream": what + name + "\n"})
	}
	return nil
}

func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) error {
	return s.imageSave(w, r.URL.Query()["names"])
}

// imageSave streams a docker-save archive; names are checked first so
// that a missing one is a 404, not a cut archive.
func (s *Server) imageSave(w http.ResponseWriter, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: no image names given", errBadRequest)
	}
	for _, n := range names {
		if _, err := s.imgs.Get(n); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.imgs.Save(w, names); err != nil {
		s.log.Warn("image save", "names", names, "err", err)
		return errWritten
	}
	return nil
}

// imagePrune removes images without a name that no container uses
// (dangling=false: every image no container uses).
func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) error {
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	if err := filters.Validate("dangling"); err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	danglingOnly := true
	for _, d := range filters["dangling"] {
		danglingOnly = d != "false" && d != "0"
	}
	imgs, err := s.imgs.List()
	if err != nil {
		return err
	}
	report := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}}
	for _, im := range imgs {
		if danglingOnly && len(im.RepoTags) > 0 || s.eng.InUse(im.ID) {
			continue
		}
		res, err := s.imgs.Remove([]string{im.ID}, true, s.eng.InUse)
		if err != nil {
			s.log.Debug("image prune", "image", im.ID, "err", err)
			continue
		}
		for _, d := range res {
			report.ImagesDeleted = append(report.ImagesDeleted, image.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
			if d.Deleted != "" {
				report.SpaceReclaimed += uint64(im.Size)
			}
		}
	}
	return writeJSON(w, http.StatusOK, report)
}

// imageEvent tells event subscribers what happened to an image.
func (s *Server) imageEvent(action, id, name string) {
	s.eng.Publish(engine.Event{Type: "image", Action: action, ID: id, Attributes: map[string]string{"name": name}, Time: time.Now()})
}

// imageHistory answers GET /images/{name}/history, newest step first; the
// top step carries the image's ID and names, the others "<missing>" as
// with pulled images in Docker.
func (s *Server) imageHistory(w http.ResponseWriter, name string) error {
	id, steps, err := s.imgs.History(name)
	if err != nil {
		return err
	}
	var tags []string
	if im, err := s.imgs.Get(name); err == nil {
		tags = im.RepoTags
	}
	out := []image.HistoryResponseItem{}
	for i, st := range steps {
		item := image.HistoryResponseItem{ID: "<missing>", Created: st.Created.Unix(), CreatedBy: st.CreatedBy, Comment: st.Comment, Size: st.Size, Tags: nil}
		if i == 0 {
			item.ID, item.Tags = id, tags
		}
		out = append(out, item)
	}
	return writeJSON(w, http.StatusOK, out)
}

// imageCommit answers POST /commit: an image of a container's changes.
func (s *Server) imageCommit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var tags []string
	if repo := q.Get("repo"); repo != "" {
		if tag := q.Get("tag"); tag != "" {
			repo += ":" + tag
		}
		tags = append(tags, repo)
	}
	changes := q["changes"]
	if err := engine.CheckChanges(changes); err != nil {
		return err
	}
	pause := q.Get("pause") == "" || boolParam(r, "pause")
	img, err := s.eng.Commit(q.Get("container"), engine.CommitOptions{Tags: tags, Author: q.Get("author"), Comment: q.Get("comment"), Changes: changes, Pause: pause})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]string{"Id": img.ID})
}

// auth answers POST /auth (docker login): the registry checks the
// credentials; nothing is stored here.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) error {
	var req registry.AuthConfig
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(req.ServerAddress, "https://"), "http://"), "/")
	switch host {
	case "", "index.docker.io/v1", "index.docker.io", "registry-1.docker.io":
		host = "docker.io"
	}
	if err := gimage.CheckLogin(r.Context(), host, req.Username, req.Password, s.opts.InsecureRegistries); err != nil {
		if errors.Is(err, gimage.ErrUnauthorized) {
			return &apiError{code: http.StatusUnauthorized, msg: "Get \"https://" + host + "/v2/\": unauthorized: incorrect username or password"}
		}
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"Status": "Login Succeeded", "IdentityToken": ""})
}
