package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CommitOptions describe an image made from a parent and one more layer.
type CommitOptions struct {
	// Parent is the image the new one extends (a reference or ID); empty
	// starts from scratch.
	Parent string
	// Layer is the new layer as an uncompressed tar with OCI whiteouts;
	// nil adds no layer (a step that only changes the configuration).
	Layer io.Reader
	// Config turns the parent's configuration into the new image's.
	Config func(*v1.Config)
	// CreatedBy, Comment and Author go into the new history entry.
	CreatedBy, Comment, Author string

	// Tags name the new image (name[:tag]).
	Tags []string
	// CacheKey, when set, makes the image part of the build cache under
	// that key (CacheLookup).
	CacheKey string
}

// Commit adds an image made of the parent's layers and one more, with the
// parent's configuration as opts.Config changes it: what docker commit and
// each step of a build make. The layer is stored uncompressed (its digest
// is its diff ID) and unpacked in the same pass.
func (s *Store) Commit(opts CommitOptions) (*Image, error) {
	img, err := s.commitImage(opts)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return img, nil
}

func (s *Store) commitImage(opts CommitOptions) (*Image, error) {
	var parent record
	cfg := &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}}
	if opts.Parent != "" {
		s.mu.Lock()
		rec, _, err := s.idx.lookup(opts.Parent)
		if err == nil {
			parent = *rec
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		raw, err := s.readBlob(parent.ID)
		if err != nil {
			return nil, err
		}
		if cfg, err = v1.ParseConfigFile(bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("parent config: %w", err)
		}
	}
	pins := []string{parent.ID}
	for _, l := range parent.Layers {
		pins = append(pins, l.Digest, l.DiffID)
	}
	s.pin(pins...)
	defer s.unpin(pins...)

	layers := append([]layerRecord{}, parent.Layers...)
	now := time.Now().UTC()
	hist := v1.History{Created: v1.Time{Time: now}, CreatedBy: opts.CreatedBy, Comment: opts.Comment, Author: opts.Author, EmptyLayer: opts.Layer == nil}
	if opts.Layer != nil {
		l, err := s.commitLayer(opts.Layer)
		if err != nil {
			return nil, err
		}
		s.pin(l.Digest)
		defer s.unpin(l.Digest)
		layers = append(layers, l)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, mustHash(l.DiffID))
	}
	if opts.Config != nil {
		opts.Config(&cfg.Config)
	}
	cfg.History = append(cfg.History, hist)
	cfg.Created = v1.Time{Time: now}
	cfg.Author = opts.Author
	// Filled in again by the container that runs it; an image's config
	// carries none of the build container's identity.
	cfg.Container, cfg.DockerVersion = "", ""
	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	configDigest := sha256Digest(sha256Sum(rawConfig))
	mf := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawConfig)), Digest: mustHash(configDigest)},
	}
	for _, l := range layers {
		mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.MediaType(l.MediaType), Size: l.Size, Digest: mustHash(l.Digest)})
	}
	rawManifest, err := json.Marshal(mf)
	if err != nil {
		return nil, err
	}
	manifestDigest := sha256Digest(sha256Sum(rawManifest))
	if err := s.writeBlob(rawConfig, configDigest); err != nil {
		return nil, err
	}
	if err := s.writeBlob(rawManifest, manifestDigest); err != nil {
		return nil, err
	}
	if err := s.syncContent(); err != nil {
		return nil, err
	}
	rec := newRecord(configDigest, cfg, int64(len(rawConfig)), string(types.OCIConfigJSON), manifestDigest, string(types.OCIManifestSchema1))
	rec.Layers = layers
	rec.BuildCacheKey = opts.CacheKey
	if opts.Layer != nil {
		rec.BuildCacheSize = layers[len(layers)-1].DiffSize
	}

	var tags []string
	for _, t := range opts.Tags {
		pr, err := parseRef(t)
		if err != nil || pr.digest != "" {
			return nil, fmt.Errorf("invalid tag %q", t)
		}
		tags = append(tags, pr.canonical())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.idx.clone()
	next.Images[rec.ID] = rec
	for _, t := range tags {
		next.Tags[t] = rec.ID
	}
	if err := s.commit(next); err != nil {
		return nil, err
	}
	return s.image(rec), nil
}

// commitLayer stores a layer tar: the blob (uncompressed) and the unpacked
// directory, both in one read of r.
func (s *Store) commitLayer(r io.Reader) (layerRecord, error) {
	bw, err := s.newBlobWriter()
	if err != nil {
		return layerRecord{}, err
	}
	defer bw.abort()
	tmp, err := os.MkdirTemp(filepath.Join(s.root, tmpDir), "layer-")
	if err != nil {
		return layerRecord{}, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, layerFSDir), 0o755); err != nil {
		return layerRecord{}, err
	}
	diffID, diffSize, err := unpack(io.TeeReader(r, bw), filepath.Join(tmp, layerFSDir))
	if err != nil {
		return layerRecord{}, fmt.Errorf("layer: %w", err)
	}
	if err := bw.commit(diffID, -1); err != nil {
		return layerRecord{}, err
	}
	if !s.hasLayer(diffID) {
		meta, _ := json.Marshal(layerMeta{DiffID: diffID, DiffSize: diffSize})
		if err := os.WriteFile(filepath.Join(tmp, layerMetaFile), meta, 0o600); err != nil {
			return layerRecord{}, err
		}
		if err := s.publishLayer(tmp, diffID); err != nil {
			return layerRecord{}, err
		}
	}
	return layerRecord{Digest: diffID, MediaType: string(types.OCIUncompressedLayer), Size: diffSize, DiffID: diffID, DiffSize: diffSize}, nil
}

// CacheLookup finds the image a build step with this cache key made:
// the newest, when --no-cache builds made more than one, so that the
// steps of one build keep finding one chain.
func (s *Store) CacheLookup(key string) (*Image, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *record
	for _, r := range s.idx.Images {
		if r.BuildCacheKey != key {
			continue
		}
		if best == nil || r.Created.After(best.Created) || r.Created.Equal(best.Created) && r.ID > best.ID {
			best = r
		}
	}
	if best == nil {
		return nil, false
	}
	return s.image(best), true
}

// CacheEntry is one image of the build cache.
type CacheEntry struct {
	ID      string
	Size    int64 // what the step added (its layer's bytes)
	Created time.Time
	InUse   bool
}

// BuildCache lists the build cache: the unnamed images build steps made.
func (s *Store) BuildCache(inUse func(string) bool) []CacheEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CacheEntry
	for _, r := range s.idx.Images {
		if r.BuildCacheKey == "" || len(s.idx.repoTags(r.ID)) > 0 {
			continue
		}
		e := CacheEntry{ID: r.ID, Created: r.Created, Size: r.BuildCacheSize}
		e.InUse = inUse != nil && inUse(r.ID)
		out = append(out, e)
	}
	return out
}

// PruneBuildCache removes the build cache images no container uses and
// returns their IDs and the bytes the removal frees (blobs other images
// share stay).
func (s *Store) PruneBuildCache(inUse func(string) bool) ([]string, int64, error) {
	var ids []string
	var size int64
	for _, e := range s.BuildCache(inUse) {
		if !e.InUse {
			ids = append(ids, e.ID)
			size += e.Size
		}
	}
	if len(ids) == 0 {
		return nil, 0, nil
	}
	if _, err := s.Remove(ids, false, inUse); err != nil {
		return nil, 0, err
	}
	return ids, size, nil
}
