package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// On-disk layout under the store root:
//
//	lock                     flock(2)ed while a Store is open
//	index.json               the tag index and image records (replaced atomically)
//	blobs/sha256/<hex>       manifests, configs and layer blobs, content-addressed
//	layers/<diffid hex>/fs   an unpacked layer: an overlayfs lowerdir
//	layers/<diffid hex>/meta.json
//	tmp/                     work in progress; emptied on Open
//
// Invariant: index.json only names blobs and layer directories that are
// complete and durable. Blobs are verified and layers unpacked in tmp/,
// then renamed into place (so blobs/ and layers/ never hold anything
// partial); one syncfs makes all of it durable; index.json is replaced
// last (write, fsync, rename, fsync the directory). A crash therefore
// leaves either the old or the new index, plus unreferenced files, which
// Open removes, so nothing that missed the sync can ever be used.
const (
	indexFile     = "index.json"
	blobDir       = "blobs/sha256"
	layerDir      = "layers"
	tmpDir        = "tmp"
	lockFile      = "lock"
	layerFSDir    = "fs"
	layerMetaFile = "meta.json"
	indexVersion  = 1
)

// Store is an image store rooted at one directory. Its methods are safe for
// concurrent use. Only one Store (in one process) may use a root at a time.
type Store struct {
	root string
	lock *os.File

	mu  sync.Mutex
	idx *index
	// pins counts in-flight operations (pulls, loads, saves) using a blob or
	// layer digest; garbage collection leaves pinned content alone.
	pins map[string]int
	// inflight deduplicates concurrent fetches of the same layer.
	inflight map[string]*flight

	// crashHook, when set by tests, is called at each step where a crash
	// must leave the store consistent.
	crashHook func(step string)
}

type flight struct {
	done chan struct{}
}

// index is the persisted state: what images exist and which names point at them.
type index struct {
	Version int                `json:"version"`
	Images  map[string]*record `json:"images"` // by image ID
	Tags    map[string]string  `json:"tags"`   // canonical "repo:tag" -> image ID
}

// record is one image. The config, manifest and layer blobs it names are
// immutable; the record caches what List and Get need from them.
type record struct {
	ID                string          `json:"id"` // "sha256:<config digest hex>"
	Manifest          string          `json:"manifest"`
	ManifestMediaType string          `json:"manifestMediaType"`
	ConfigMediaType   string          `json:"configMediaType"`
	ConfigSize        int64           `json:"configSize"`
	Layers            []layerRecord   `json:"layers"`
	RepoDigests       []string        `json:"repoDigests,omitempty"` // canonical "repo@sha256:..."
	Created           time.Time       `json:"created"`
	OS                string          `json:"os"`
	Architecture      string          `json:"architecture"`
	Variant           string          `json:"variant,omitempty"`
	Config            api.ImageConfig `json:"config"`
	// BuildCacheKey marks an image a build step made: the step's cache
	// key. Such images without a name are the build cache, listed only
	// with all.
	BuildCacheKey string `json:"buildCacheKey,omitempty"`
	// BuildCacheSize is what the step added: its layer's bytes, 0 for a
	// step that only changed the configuration.
	BuildCacheSize int64 `json:"buildCacheSize,omitempty"`
}

type layerRecord struct {
	Digest    string `json:"digest"` // blob as stored (usually compressed)
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	DiffID    string `json:"diffID"` // digest of the uncompressed tar
	DiffSize  int64  `json:"diffSize"`
}

// layerMeta is written next to an unpacked layer so that a layer found on
// disk can be reused without its blob.
type layerMeta struct {
	DiffID   string `json:"diffID"`
	DiffSize int64  `json:"diffSize"`
}

func newIndex() *index {
	return &index{Version: indexVersion, Images: map[string]*record{}, Tags: map[string]string{}}
}

// clone copies the index deeply enough that the copy can be changed and
// written without touching the live one until the write has succeeded.
func (x *index) clone() *index {
	c := &index{Version: x.Version, Images: make(map[string]*record, len(x.Images)), Tags: make(map[string]string, len(x.Tags))}
	for id, r := range x.Images {
		rc := *r
		rc.RepoDigests = slices.Clone(r.RepoDigests)
		c.Images[id] = &rc
	}
	for k, v := range x.Tags {
		c.Tags[k] = v
	}
	return c
}

// repoTags returns the canonical tags pointing at id, sorted.
func (x *index) repoTags(id string) []string {
	var tags []string
	for t, tid := range x.Tags {
		if tid == id {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// Open opens (creating if needed) the store rooted at dir, removes what an
// interrupted operation left behind, and loads the tag index.
func Open(dir string) (*Store, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, blobDir), filepath.Join(root, layerDir), filepath.Join(root, tmpDir)} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	lock, err := lockRoot(filepath.Join(root, lockFile))
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	// Layers and loads are unpacked in directories made in tmp/.
	markTopDir(filepath.Join(root, tmpDir))
	s := &Store{root: root, lock: lock, pins: map[string]int{}, inflight: map[string]*flight{}}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	return s, nil
}

// Close releases the store's lock. The Store must not be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// recover empties tmp/, loads the index, drops records whose content is
// missing, and removes content no record references.
func (s *Store) recover() error {
	tmp := filepath.Join(s.root, tmpDir)
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("remove stale %s: %w", e.Name(), err)
		}
	}

	idx := newIndex()
	b, err := os.ReadFile(filepath.Join(s.root, indexFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, idx); err != nil {
			// Never overwrite an index we cannot read: it is the user's data.
			return fmt.Errorf("read %s: %w", indexFile, err)
		}
		if idx.Version != indexVersion {
			return fmt.Errorf("%s has version %d, want %d", indexFile, idx.Version, indexVersion)
		}
		if idx.Images == nil {
			idx.Images = map[string]*record{}
		}
		if idx.Tags == nil {
			idx.Tags = map[string]string{}
		}
	}
	// Renames are ordered so that this cannot happen short of someone
	// deleting files by hand; an image whose content is gone is hidden
	// rather than handed to a container.
	for id, r := range idx.Images {
		if !s.complete(r) {
			delete(idx.Images, id)
		}
	}
	for t, id := range idx.Tags {
		if idx.Images[id] == nil {
			delete(idx.Tags, t)
		}
	}
	s.idx = idx
	trash, err := s.sweep()
	removeTrash(trash)
	return err
}

// complete reports whether every file a record names is present.
func (s *Store) complete(r *record) bool {
	for _, d := range []string{r.ID, r.Manifest} {
		if !s.hasBlob(d) {
			return false
		}
	}
	for _, l := range r.Layers {
		if !s.hasBlob(l.Digest) || !s.hasLayer(l.DiffID) {
			return false
		}
	}
	return true
}

// referenced returns the blob and layer digests the index and the in-flight
// operations still need. Callers hold s.mu.
func (s *Store) referenced() map[string]bool {
	ref := map[string]bool{}
	for _, r := range s.idx.Images {
		ref[r.ID] = true
		ref[r.Manifest] = true
		for _, l := range r.Layers {
			ref[l.Digest] = true
			ref[l.DiffID] = true
		}
	}
	for d := range s.pins {
		ref[d] = true
	}
	return ref
}

// sweep removes blobs and layers nothing references. Layer directories are
// renamed into tmp/ so that a half-deleted layer is never visible under
// layers/; the caller deletes the returned directories, outside s.mu since
// that can take a while. Callers hold s.mu (or own s exclusively, as Open
// does).
func (s *Store) sweep() (trash []string, err error) {
	ref := s.referenced()
	ents, err := os.ReadDir(filepath.Join(s.root, blobDir))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !ref["sha256:"+e.Name()] {
			if err := os.Remove(filepath.Join(s.root, blobDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return trash, fmt.Errorf("remove unreferenced blob: %w", err)
			}
		}
	}
	ents, err = os.ReadDir(filepath.Join(s.root, layerDir))
	if err != nil {
		return trash, err
	}
	for _, e := range ents {
		if ref["sha256:"+e.Name()] {
			continue
		}
		t, err := os.MkdirTemp(filepath.Join(s.root, tmpDir), "gc-")
		if err != nil {
			return trash, err
		}
		trash = append(trash, t)
		if err := os.Rename(filepath.Join(s.root, layerDir, e.Name()), filepath.Join(t, "layer")); err != nil {
			return trash, fmt.Errorf("remove unreferenced layer: %w", err)
		}
		s.hook("gc-moved")
	}
	return trash, nil
}

// removeTrash deletes directories sweep moved aside. What it cannot delete
// now, Open deletes later: tmp/ is emptied there.
func removeTrash(trash []string) {
	for _, t := range trash {
		os.RemoveAll(t)
	}
}

// commit makes next the live index: it is written to tmp/, synced, renamed
// over index.json and the directory synced. Callers hold s.mu.
func (s *Store) commit(next *index) error {
	b, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "index-")
	if err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write image index: %w", err)
	}
	s.hook("index-written")
	if err := os.Rename(tmp, filepath.Join(s.root, indexFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write image index: %w", err)
	}
	if err := syncDir(s.root); err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	s.idx = next
	s.hook("index-renamed")
	return nil
}

func (s *Store) hook(step string) {
	if s.crashHook != nil {
		s.crashHook(step)
	}
}

// pin protects digests from garbage collection until unpin.
func (s *Store) pin(digests ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range digests {
		s.pins[d]++
	}
}

func (s *Store) unpin(digests ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range digests {
		if s.pins[d]--; s.pins[d] <= 0 {
			delete(s.pins, d)
		}
	}
}

func (s *Store) blobPath(d string) string {
	h, err := digestHex(d)
	if err != nil {
		// Digests are validated where they enter the store; an invalid one
		// here names nothing.
		return filepath.Join(s.root, blobDir, "invalid")
	}
	return filepath.Join(s.root, blobDir, h)
}

func (s *Store) layerPath(diffID string) string {
	h, err := digestHex(diffID)
	if err != nil {
		return filepath.Join(s.root, layerDir, "invalid")
	}
	return filepath.Join(s.root, layerDir, h)
}

func (s *Store) hasBlob(d string) bool {
	if _, err := digestHex(d); err != nil {
		return false
	}
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

func (s *Store) hasLayer(diffID string) bool {
	if _, err := digestHex(diffID); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(s.layerPath(diffID), layerMetaFile))
	return err == nil
}

// readLayerMeta returns the metadata of an unpacked layer.
func (s *Store) readLayerMeta(diffID string) (layerMeta, error) {
	var m layerMeta
	b, err := os.ReadFile(filepath.Join(s.layerPath(diffID), layerMetaFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("layer %s: %w", diffID, err)
	}
	return m, nil
}

// image builds the exported view of a record. Callers hold s.mu.
func (s *Store) image(r *record) *Image {
	img := &Image{
		ID:           r.ID,
		RepoTags:     familiarAll(s.idx.repoTags(r.ID)),
		RepoDigests:  familiarAll(r.RepoDigests),
		Config:       r.Config,
		Created:      r.Created,
		Size:         r.size(),
		OS:           r.OS,
		Architecture: r.Architecture,
	}
	img.Config.Env = slices.Clone(r.Config.Env)
	img.Config.Cmd = slices.Clone(r.Config.Cmd)
	img.Config.Entrypoint = slices.Clone(r.Config.Entrypoint)
	img.Layers = layerDirs(s, r.Layers)
	return img
}

// layerDirs lists the unpacked layers of an image, lowest first. A layer
// that occurs more than once (empty layers often do) is listed only at its
// topmost place: overlayfs refuses a lowerdir given twice, and since the
// upper copy re-applies the same files, whiteouts and opaque markers over
// everything below it, the lower copies change nothing in the merged view.
func layerDirs(s *Store, layers []layerRecord) []string {
	var dirs []string
	for i, l := range layers {
		if slices.ContainsFunc(layers[i+1:], func(u layerRecord) bool { return u.DiffID == l.DiffID }) {
			continue
		}
		dirs = append(dirs, filepath.Join(s.layerPath(l.DiffID), layerFSDir))
	}
	return dirs
}

func (r *record) size() int64 {
	var n int64
	for _, l := range r.Layers {
		n += l.DiffSize
	}
	return n
}

func familiarAll(refs []string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, familiar(r))
	}
	return out
}

// lookup finds the record a user's reference names: a name[:tag], a
// name@digest, a full image ID ("sha256:<hex>" or "<hex>") or a unique ID
// prefix. byName is the reference when it matched a tag or a registry
// digest (which Remove untags) rather than an ID.
func (x *index) lookup(ref string) (r *record, byName *imageRef, err error) {
	notFound := fmt.Errorf("%w: %s", ErrNotFound, truncate(ref, 200))
	if ref == "" {
		return nil, nil, notFound
	}
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		return x.lookupID(h, ref, notFound)
	}
	if pr, err := parseRef(ref); err == nil {
		if pr.digest != "" {
			c := pr.canonical()
			for _, rec := range x.Images {
				if slices.Contains(rec.RepoDigests, c) {
					return rec, &pr, nil
				}
			}
			// A loaded image has no registry digest, but its manifest has one.
			for _, rec := range x.Images {
				if rec.Manifest == pr.digest && slices.ContainsFunc(x.repoTags(rec.ID), func(t string) bool { return repoOf(t) == pr.repo }) {
					return rec, nil, nil
				}
			}
		} else if id, ok := x.Tags[pr.canonical()]; ok {
			return x.Images[id], &pr, nil
		}
	}
	if isLowerHex(ref) && len(ref) <= 64 {
		return x.lookupID(ref, ref, notFound)
	}
	return nil, nil, notFound
}

func (x *index) lookupID(prefix, ref string, notFound error) (*record, *imageRef, error) {
	if prefix == "" || len(prefix) > 64 || !isLowerHex(prefix) {
		return nil, nil, notFound
	}
	if r, ok := x.Images["sha256:"+prefix]; ok {
		return r, nil, nil
	}
	var found *record
	for id, r := range x.Images {
		if strings.HasPrefix(id, "sha256:"+prefix) {
			if found != nil {
				return nil, nil, fmt.Errorf("image ID prefix %s is ambiguous: it matches more than one image", ref)
			}
			found = r
		}
	}
	if found == nil {
		return nil, nil, notFound
	}
	return found, nil, nil
}

// Get returns the image a reference names: name[:tag], name@digest, a full
// or short image ID. The error wraps ErrNotFound when there is none.
func (s *Store) Get(ref string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.idx.lookup(ref)
	if err != nil {
		return nil, err
	}
	return s.image(r), nil
}

// List returns every image, newest first, shaped like Docker's /images/json.
// An image without tags (dangling) is listed with empty RepoTags.
func (s *Store) List() ([]api.ImageSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.ImageSummary, 0, len(s.idx.Images))
	for _, r := range s.idx.Images {
		if r.BuildCacheKey != "" && len(s.idx.repoTags(r.ID)) == 0 {
			continue // build cache: BuildCache lists it
		}
		out = append(out, api.ImageSummary{
			ID:          r.ID,
			RepoTags:    familiarAll(s.idx.repoTags(r.ID)),
			RepoDigests: familiarAll(r.RepoDigests),
			Created:     r.Created.Unix(),
			Size:        r.size(),
			Labels:      r.Config.Labels,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Inspect returns the details of one image, shaped like Docker's image inspect.
func (s *Store) Inspect(ref string) (*api.ImageInspect, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.idx.lookup(ref)
	if err != nil {
		return nil, err
	}
	img := s.image(r)
	ii := &api.ImageInspect{
		ID:           r.ID,
		RepoTags:     img.RepoTags,
		RepoDigests:  img.RepoDigests,
		Created:      r.Created.UTC().Format(time.RFC3339Nano),
		Architecture: r.Architecture,
		Os:           r.OS,
		Size:         img.Size,
		Config:       img.Config,
	}
	ii.RootFS.Type = "layers"
	ii.RootFS.Layers = []string{}
	for _, l := range r.Layers {
		ii.RootFS.Layers = append(ii.RootFS.Layers, l.DiffID)
	}
	return ii, nil
}
