package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Archive limits: metadata files are read into memory, and so are small
// files (configs, manifests, tiny layers) up to a total, so that an archive
// of many small files does not cost a temporary file each.
const (
	maxMetaFile   = 16 << 20
	smallFile     = 256 << 10
	maxSmallTotal = 64 << 20
	maxLinkHops   = 16
)

// Load reads a docker-save archive (manifest.json, legacy or Docker 25+
// layout) or an OCI image layout archive from r and stores its images. The
// archive is streamed: each file is hashed and spooled to the store's tmp/
// as it arrives, and files that look like layers are unpacked in the same
// pass. Nothing becomes visible unless the whole archive was read and every
// image in it checked out. It returns the loaded names ("busybox:latest"),
// or image IDs for images without a name.
func (s *Store) Load(r io.Reader) ([]string, error) {
	out, err := s.load(r)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return out, nil
}

// spooled is one regular file of the archive.
type spooled struct {
	data   []byte // small files, in memory
	path   string // larger files, spooled under the load's work directory
	digest string
	size   int64
	comp   compression

	// Set once the file has been unpacked as a layer.
	unpacked  string // directory holding fs/
	diffID    string
	diffSize  int64
	unpackErr error
	tried     bool
}

type loader struct {
	s        *Store
	work     string
	files    map[string]*spooled
	links    map[string]string
	meta     map[string][]byte
	small    int64
	nextFile int
}

// loadedImage is an image of the archive, checked and ready to commit.
type loadedImage struct {
	rec      *record
	config   *spooled
	manifest []byte
	layers   []*spooled
	tags     []string // canonical
}

func (s *Store) load(r io.Reader) ([]string, error) {
	work, err := os.MkdirTemp(filepath.Join(s.root, tmpDir), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	l := &loader{s: s, work: work, files: map[string]*spooled{}, links: map[string]string{}, meta: map[string][]byte{}}
	if err := l.read(r); err != nil {
		return nil, err
	}
	var imgs []*loadedImage
	switch {
	case l.meta["manifest.json"] != nil:
		imgs, err = l.dockerImages()
	case l.meta["index.json"] != nil:
		imgs, err = l.ociImages()
	default:
		return nil, errors.New("not a docker-save or OCI archive: it has neither manifest.json nor index.json")
	}
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("the archive holds no images")
	}
	return s.commitLoaded(imgs)
}

// read consumes the archive.
func (l *loader) read(r io.Reader) error {
	tr := tar.NewReader(bufio.NewReaderSize(r, 64<<10))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		p := archivePath(hdr.Name)
		if p == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			t := hdr.Linkname
			if !strings.HasPrefix(t, "/") {
				t = path.Join(path.Dir(p), t)
			}
			l.links[p] = archivePath(t)
		case tar.TypeLink:
			l.links[p] = archivePath(hdr.Linkname)
		case tar.TypeReg, tar.TypeRegA:
			if err := l.file(p, hdr.Size, tr); err != nil {
				return fmt.Errorf("read archive: %s: %w", truncate(p, 120), err)
			}
		}
	}
	return nil
}

// archivePath cleans a name inside the archive; these are map keys, never
// file system paths.
func archivePath(name string) string {
	p := strings.TrimLeft(path.Clean("/"+name), "/")
	if p == "." {
		return ""
	}
	return p
}

func (l *loader) file(p string, size int64, r io.Reader) error {
	switch p {
	case "manifest.json", "index.json", "oci-layout", "repositories":
		b, err := io.ReadAll(io.LimitReader(r, maxMetaFile+1))
		if err != nil {
			return err
		}
		if len(b) > maxMetaFile {
			return errors.New("file too large")
		}
		l.meta[p] = b
		return nil
	}
	sp := &spooled{}
	if size <= smallFile && l.small+size <= maxSmallTotal {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		l.small += int64(len(b))
		sp.data, sp.size = b, int64(len(b))
		sp.digest = sha256Digest(sha256Sum(b))
		sp.comp = sniffCompression(b)
	} else if err := l.spool(sp, r); err != nil {
		return err
	}
	if want, ok := strings.CutPrefix(p, "blobs/sha256/"); ok && sp.digest != "sha256:"+want {
		return fmt.Errorf("corrupt archive: content has digest %s", sp.digest)
	}
	l.files[p] = sp
	return nil
}

// spool writes a large file to the work directory, hashing it, and unpacks
// it on the way if it looks like a layer (compressed, or a tar).
func (l *loader) spool(sp *spooled, r io.Reader) error {
	l.nextFile++
	sp.path = filepath.Join(l.work, fmt.Sprintf("f%d", l.nextFile))
	f, err := os.OpenFile(sp.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fw := bufio.NewWriterSize(f, 256<<10)
	h := &countingHash{h: sha256.New()}
	br := bufio.NewReaderSize(io.TeeReader(r, io.MultiWriter(fw, h)), 64<<10)
	head, _ := br.Peek(512)
	sp.comp = sniffCompression(head)
	if sp.comp != compressionNone || isTarHeader(head) {
		l.unpackInto(sp, br)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	sp.digest, sp.size = sha256Digest(h.h.Sum(nil)), h.n
	return f.Close()
}

func isTarHeader(b []byte) bool {
	return len(b) >= 262 && string(b[257:262]) == "ustar"
}

// unpackInto unpacks a layer from r into a new directory of the work
// directory, recording the outcome in sp; a file that is not a valid layer
// only matters if an image turns out to use it as one.
func (l *loader) unpackInto(sp *spooled, r io.Reader) {
	sp.tried = true
	dir, err := os.MkdirTemp(l.work, "layer-")
	if err == nil {
		err = os.Mkdir(filepath.Join(dir, layerFSDir), 0o755)
	}
	if err != nil {
		sp.unpackErr = err
		return
	}
	sp.diffID, sp.diffSize, sp.unpackErr = unpack(r, filepath.Join(dir, layerFSDir))
	if sp.unpackErr != nil {
		os.RemoveAll(dir)
		return
	}
	sp.unpacked = dir
}

// layer returns a file used as a layer, unpacked, checking its diff ID.
func (l *loader) layer(p, wantDiffID string) (*spooled, error) {
	sp, err := l.lookup(p)
	if err != nil {
		return nil, err
	}
	if !sp.tried {
		r, err := l.open(sp)
		if err != nil {
			return nil, err
		}
		if l.s.hasLayer(wantDiffID) {
			// Only the diff ID is needed: hash without unpacking.
			sp.tried = true
			sp.diffID, sp.diffSize, sp.unpackErr = unpack(r, "")
		} else {
			l.unpackInto(sp, r)
		}
		r.Close()
	}
	if sp.unpackErr != nil {
		return nil, fmt.Errorf("layer %s: %w", truncate(p, 120), sp.unpackErr)
	}
	if sp.diffID != wantDiffID {
		return nil, fmt.Errorf("layer %s: unpacked content has digest %s, the image config says %s", truncate(p, 120), sp.diffID, wantDiffID)
	}
	return sp, nil
}

// open returns a spooled file's content.
func (l *loader) open(sp *spooled) (io.ReadCloser, error) {
	if sp.path == "" {
		return io.NopCloser(bytes.NewReader(sp.data)), nil
	}
	return os.Open(sp.path)
}

// bytes returns a small file (config, manifest) of the archive.
func (l *loader) bytes(sp *spooled) ([]byte, error) {
	if sp.path == "" {
		return sp.data, nil
	}
	if sp.size > maxManifestSize {
		return nil, errors.New("file too large")
	}
	return os.ReadFile(sp.path)
}

// lookup finds an archive file by path, following the archive's links.
func (l *loader) lookup(p string) (*spooled, error) {
	orig := p
	for range maxLinkHops {
		p = archivePath(p)
		if sp, ok := l.files[p]; ok {
			return sp, nil
		}
		t, ok := l.links[p]
		if !ok {
			break
		}
		p = t
	}
	return nil, fmt.Errorf("the archive has no file %q", truncate(orig, 120))
}

// dockerImages reads a docker-save manifest.json.
func (l *loader) dockerImages() ([]*loadedImage, error) {
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(l.meta["manifest.json"], &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %s", oneLine(err.Error()))
	}
	var out []*loadedImage
	for _, e := range entries {
		cfgFile, err := l.lookup(e.Config)
		if err != nil {
			return nil, err
		}
		img, err := l.image(cfgFile, "", e.Layers, nil)
		if err != nil {
			return nil, err
		}
		for _, t := range e.RepoTags {
			r, err := parseRef(t)
			if err != nil || r.tag == "" {
				return nil, fmt.Errorf("manifest.json: bad tag %q", truncate(t, 120))
			}
			img.tags = append(img.tags, r.canonical())
		}
		out = append(out, img)
	}
	return out, nil
}

// image checks one image: its config, then its layers in order. With no
// manifest (docker-save), an OCI manifest is made up for it.
func (l *loader) image(cfgFile *spooled, manifestMediaType string, layerPaths []string, manifest []byte) (*loadedImage, error) {
	raw, err := l.bytes(cfgFile)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image config: %s", oneLine(err.Error()))
	}
	if len(cfg.RootFS.DiffIDs) != len(layerPaths) {
		return nil, fmt.Errorf("image %s has %d layers but its config lists %d", shortID(cfgFile.digest), len(layerPaths), len(cfg.RootFS.DiffIDs))
	}
	img := &loadedImage{config: cfgFile}
	var mf *v1.Manifest
	if manifest == nil {
		mf = &v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgFile.size, Digest: mustHash(cfgFile.digest)},
		}
		manifestMediaType = string(types.OCIManifestSchema1)
	}
	var layers []layerRecord
	for i, p := range layerPaths {
		want := cfg.RootFS.DiffIDs[i].String()
		if _, err := digestHex(want); err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		sp, err := l.layer(p, want)
		if err != nil {
			return nil, err
		}
		mt := layerMediaType(sp.comp)
		if mf != nil {
			mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.MediaType(mt), Size: sp.size, Digest: mustHash(sp.digest)})
		}
		img.layers = append(img.layers, sp)
		layers = append(layers, layerRecord{Digest: sp.digest, MediaType: mt, Size: sp.size, DiffID: want, DiffSize: sp.diffSize})
	}
	if mf != nil {
		if manifest, err = json.Marshal(mf); err != nil {
			return nil, err
		}
	}
	img.manifest = manifest
	img.rec = newRecord(cfgFile.digest, cfg, cfgFile.size, string(types.OCIConfigJSON), sha256Digest(sha256Sum(manifest)), manifestMediaType)
	img.rec.Layers = layers
	return img, nil
}

func layerMediaType(c compression) string {
	switch c {
	case compressionGzip:
		return string(types.OCILayer)
	case compressionZstd:
		return string(types.OCILayerZStd)
	}
	return string(types.OCIUncompressedLayer)
}

func mustHash(d string) v1.Hash {
	h, err := v1.NewHash(d)
	if err != nil {
		// Only called with digests this package computed.
		return v1.Hash{Algorithm: "sha256"}
	}
	return h
}

// ociImages reads an OCI layout's index.json, resolving nested indexes to
// linux/<GOARCH>.
func (l *loader) ociImages() ([]*loadedImage, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(l.meta["index.json"], &idx); err != nil {
		return nil, fmt.Errorf("index.json: %s", oneLine(err.Error()))
	}
	platform, _ := parsePlatform("")
	byID := map[string]*loadedImage{}
	var out []*loadedImage
	for _, d := range idx.Manifests {
		img, err := l.ociDescriptor(d, platform, 0)
		if err != nil {
			return nil, err
		}
		if img == nil {
			continue
		}
		if prev, ok := byID[img.rec.ID]; ok {
			img = prev
		} else {
			byID[img.rec.ID] = img
			out = append(out, img)
		}
		if n := ociName(d.Annotations); n != "" {
			r, err := parseRef(n)
			if err != nil || r.tag == "" {
				return nil, fmt.Errorf("index.json: bad image name %q", truncate(n, 120))
			}
			if !slices.Contains(img.tags, r.canonical()) {
				img.tags = append(img.tags, r.canonical())
			}
		}
	}
	return out, nil
}

// ociName is the image name an index entry carries: containerd's full name,
// or the OCI ref.name when it is a full reference rather than just a tag.
func ociName(a map[string]string) string {
	if n := a["io.containerd.image.name"]; n != "" {
		return n
	}
	n := a["org.opencontainers.image.ref.name"]
	if strings.ContainsAny(n, ":/@") {
		return n
	}
	return ""
}

func (l *loader) ociDescriptor(d v1.Descriptor, platform v1.Platform, depth int) (*loadedImage, error) {
	if depth > 4 {
		return nil, errors.New("index.json: indexes nested too deeply")
	}
	hexd, err := digestHex(d.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	sp, err := l.lookup("blobs/sha256/" + hexd)
	if err != nil {
		return nil, err
	}
	raw, err := l.bytes(sp)
	if err != nil {
		return nil, err
	}
	switch d.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		child, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %s", d.Digest, oneLine(err.Error()))
		}
		for _, m := range child.Manifests {
			if m.Platform == nil || m.Platform.Satisfies(platform) {
				if m.MediaType == types.OCIImageIndex || m.MediaType == types.DockerManifestList || m.MediaType.IsImage() {
					return l.ociDescriptor(m, platform, depth+1)
				}
			}
		}
		return nil, fmt.Errorf("index %s has no image for %s", d.Digest, platform)
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		// Artifacts (signatures, attestations) are not images.
		return nil, nil
	}
	mf, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %s", d.Digest, oneLine(err.Error()))
	}
	if err := checkManifest(mf); err != nil {
		return nil, err
	}
	cfgFile, err := l.lookup("blobs/sha256/" + mf.Config.Digest.Hex)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, ld := range mf.Layers {
		paths = append(paths, "blobs/sha256/"+ld.Digest.Hex)
	}
	img, err := l.image(cfgFile, string(d.MediaType), paths, raw)
	if err != nil {
		return nil, err
	}
	for i := range img.rec.Layers {
		img.rec.Layers[i].MediaType = string(mf.Layers[i].MediaType)
	}
	img.rec.ConfigMediaType = string(mf.Config.MediaType)
	return img, nil
}

// commitLoaded moves the images' blobs and layers into the store and
// records them.
func (s *Store) commitLoaded(imgs []*loadedImage) ([]string, error) {
	var pins []string
	for _, img := range imgs {
		pins = append(pins, img.rec.ID, img.rec.Manifest)
		for _, l := range img.rec.Layers {
			pins = append(pins, l.Digest, l.DiffID)
		}
	}
	s.pin(pins...)
	defer s.unpin(pins...)

	for _, img := range imgs {
		if err := s.storeSpooled(img.config); err != nil {
			return nil, err
		}
		if err := s.writeBlob(img.manifest, img.rec.Manifest); err != nil {
			return nil, err
		}
		for i, sp := range img.layers {
			if err := s.storeSpooled(sp); err != nil {
				return nil, err
			}
			if s.hasLayer(img.rec.Layers[i].DiffID) || sp.unpacked == "" {
				continue
			}
			meta, _ := json.Marshal(layerMeta{DiffID: sp.diffID, DiffSize: sp.diffSize})
			if err := os.WriteFile(filepath.Join(sp.unpacked, layerMetaFile), meta, 0o600); err != nil {
				return nil, err
			}
			if err := s.publishLayer(sp.unpacked, sp.diffID); err != nil {
				return nil, err
			}
			s.hook("layer-renamed")
			sp.unpacked = ""
		}
	}
	if err := s.syncContent(); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.idx.clone()
	var out []string
	for _, img := range imgs {
		if old := next.Images[img.rec.ID]; old != nil {
			img.rec.RepoDigests = old.RepoDigests
		}
		next.Images[img.rec.ID] = img.rec
		for _, t := range img.tags {
			next.Tags[t] = img.rec.ID
			out = append(out, familiar(t))
		}
		if len(img.tags) == 0 {
			out = append(out, img.rec.ID)
		}
	}
	if err := s.commit(next); err != nil {
		return nil, err
	}
	return out, nil
}

// storeSpooled moves a verified archive file into blobs/.
func (s *Store) storeSpooled(sp *spooled) error {
	if s.hasBlob(sp.digest) {
		return nil
	}
	if sp.path == "" {
		return s.writeBlob(sp.data, sp.digest)
	}
	if err := os.Rename(sp.path, s.blobPath(sp.digest)); err != nil {
		return fmt.Errorf("store blob %s: %w", sp.digest, err)
	}
	s.hook("blob-renamed")
	return nil
}
