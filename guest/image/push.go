package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/vmbox/vmbox/guest/api"
)

// Push uploads the image a name:tag names to its registry, with the
// manifest and blobs the store holds as they are: an image pushed and
// pulled back has the same digest. Layers the registry has are not sent
// again (and are mounted from another repository of it where it offers
// that). Progress reports each layer and ends with the tag's digest, as
// docker push prints them. It returns the manifest digest.
func (s *Store) Push(ctx context.Context, ref string, opts PullOptions, progress func(api.PullProgress)) (string, error) {
	d, err := s.push(ctx, ref, opts, &reporter{fn: progress})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", truncate(ref, 200), err)
	}
	return d, nil
}

func (s *Store) push(ctx context.Context, refStr string, opts PullOptions, rep *reporter) (string, error) {
	pr, err := parseRef(refStr)
	if err != nil {
		return "", err
	}
	if pr.digest != "" {
		return "", fmt.Errorf("push a tag, not a digest reference")
	}
	s.mu.Lock()
	rec, _, err := s.idx.lookup(refStr)
	var r record
	if err == nil {
		r = *rec
	}
	s.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("%w: %s (an image does not exist locally with that tag)", ErrNotFound, familiar(pr.canonical()))
	}
	pins := []string{r.ID, r.Manifest}
	for _, l := range r.Layers {
		pins = append(pins, l.Digest)
	}
	s.pin(pins...)
	defer s.unpin(pins...)

	reg := pr.ref.Context().Registry
	if allowHTTP(ctx, reg.RegistryStr(), opts.InsecureRegistries) {
		if pr, err = parseRef(refStr, name.Insecure); err != nil {
			return "", err
		}
	}
	auth, err := authenticator(opts, reg.RegistryStr())
	if err != nil {
		return "", err
	}
	manifest, err := s.readBlob(r.Manifest)
	if err != nil {
		return "", err
	}
	stored, err := partial.CompressedToImage(&storedImage{s: s, rec: r, manifest: manifest})
	if err != nil {
		return "", err
	}
	img := &mountingImage{Image: stored, from: s.mountSources(r, pr.ref.Context())}
	rep.send(api.PullProgress{Status: "The push refers to repository [" + pr.ref.Context().Name() + "]"})
	for i := len(r.Layers) - 1; i >= 0; i-- {
		rep.send(api.PullProgress{ID: shortHex(r.Layers[i].Digest), Status: "Preparing"})
	}
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range updates {
			rep.send(api.PullProgress{Status: "Pushing", ProgressDetail: &api.ProgressDetail{Current: u.Complete, Total: u.Total}})
		}
	}()
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithUserAgent("vmbox"), remote.WithProgress(updates)}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}
	werr := remote.Write(pr.ref, img, ropts...)
	<-done
	if werr != nil {
		return "", registryError(werr)
	}
	for i := len(r.Layers) - 1; i >= 0; i-- {
		rep.send(api.PullProgress{ID: shortHex(r.Layers[i].Digest), Status: "Pushed"})
	}
	// As after a pull: the repository now holds the image, which later
	// pushes of images sharing its layers mount from.
	if err := s.addRepoDigest(r.ID, pr.ref.Context().Name()+"@"+r.Manifest); err != nil {
		return "", err
	}
	rep.send(api.PullProgress{Status: pr.tag + ": digest: " + r.Manifest + " size: " + strconv.Itoa(len(manifest))})
	return r.Manifest, nil
}

// mountSources finds, for each layer of r, a repository of the registry
// repo is pushed to that already holds it (one a stored image sharing the
// layer was pulled from or pushed to), so that the registry mounts the
// blob across repositories instead of receiving it again.
func (s *Store) mountSources(r record, repo name.Repository) map[string]name.Reference {
	want := map[string]bool{}
	for _, l := range r.Layers {
		want[l.Digest] = true
	}
	from := map[string]name.Reference{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, other := range s.idx.Images {
		for _, rd := range other.RepoDigests {
			d, err := name.NewDigest(rd, name.WeakValidation)
			if err != nil || d.Context().RegistryStr() != repo.RegistryStr() || d.Context().RepositoryStr() == repo.RepositoryStr() {
				continue
			}
			for _, l := range other.Layers {
				if want[l.Digest] && from[l.Digest] == nil {
					from[l.Digest] = d
				}
			}
		}
	}
	return from
}

// addRepoDigest records that repoDigest names image id.
func (s *Store) addRepoDigest(id, repoDigest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.idx.clone()
	rec := next.Images[id]
	if rec == nil || slices.Contains(rec.RepoDigests, repoDigest) {
		return nil
	}
	c := *rec
	c.RepoDigests = append(slices.Clone(rec.RepoDigests), repoDigest)
	next.Images[id] = &c
	return s.commit(next)
}

// mountingImage is an image whose layers name, where one is known, a
// repository of the same registry to mount them from
// (remote.MountableLayer, which go-containerregistry's writer mounts).
type mountingImage struct {
	v1.Image
	from map[string]name.Reference // by layer digest
}

func (m *mountingImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	for i, l := range ls {
		if d, err := l.Digest(); err == nil {
			if ref := m.from[d.String()]; ref != nil {
				ls[i] = &remote.MountableLayer{Layer: l, Reference: ref}
			}
		}
	}
	return ls, nil
}

func shortHex(d string) string {
	h, err := digestHex(d)
	if err != nil || len(h) < 12 {
		return d
	}
	return h[:12]
}

// storedImage is a stored image as go-containerregistry's compressed
// image: its manifest, config and layer blobs as the store has them.
type storedImage struct {
	s        *Store
	rec      record
	manifest []byte
}

func (i *storedImage) RawConfigFile() ([]byte, error) { return i.s.readBlob(i.rec.ID) }

func (i *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(i.rec.ManifestMediaType), nil
}

func (i *storedImage) RawManifest() ([]byte, error) { return i.manifest, nil }

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.rec.Layers {
		if l.Digest == h.String() {
			return &storedLayer{s: i.s, l: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in the image", h)
}

// storedLayer is one layer blob of the store.
type storedLayer struct {
	s *Store
	l layerRecord
}

func (l *storedLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.l.Digest) }

func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	return os.Open(l.s.blobPath(l.l.Digest))
}

func (l *storedLayer) Size() (int64, error) { return l.l.Size, nil }

func (l *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.l.MediaType), nil
}

// HistoryEntry is one step of an image's history, newest first in
// History's answer: the layer it made (if any) and how.
type HistoryEntry struct {
	Created    time.Time
	CreatedBy  string
	Comment    string
	Size       int64 // unpacked bytes of the step's layer; 0 for an empty step
	EmptyLayer bool
}

// History reads the image's build history from its config; steps that
// made a layer are matched with the image's layers in order.
func (s *Store) History(ref string) (id string, steps []HistoryEntry, err error) {
	s.mu.Lock()
	rec, _, err := s.idx.lookup(ref)
	var r record
	if err == nil {
		r = *rec
	}
	s.mu.Unlock()
	if err != nil {
		return "", nil, err
	}
	raw, err := s.readBlob(r.ID)
	if err != nil {
		return "", nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return "", nil, fmt.Errorf("image config: %w", err)
	}
	layer := 0
	for _, h := range cfg.History {
		e := HistoryEntry{Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer && layer < len(r.Layers) {
			e.Size = r.Layers[layer].DiffSize
			layer++
		}
		steps = append(steps, e)
	}
	if len(cfg.History) == 0 {
		// Images built without history still have their layers.
		for _, l := range r.Layers {
			steps = append(steps, HistoryEntry{Created: r.Created, Size: l.DiffSize})
		}
	}
	slices.Reverse(steps)
	return r.ID, steps, nil
}

// ConfigFile reads an image's whole configuration.
func (s *Store) ConfigFile(ref string) (*v1.ConfigFile, error) {
	s.mu.Lock()
	rec, _, err := s.idx.lookup(ref)
	var id string
	if err == nil {
		id = rec.ID
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	raw, err := s.readBlob(id)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return cf, nil
}
