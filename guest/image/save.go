package image

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Save writes the named images to w as a docker-save archive in the layout
// Docker 25+ writes: an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) plus manifest.json, so docker load (old and new),
// skopeo's docker-archive: and oci-archive: transports can all read it.
// Layers are written uncompressed, as docker save does, decompressed from
// the store on the fly and checked against their diff IDs. A name that is a
// tag carries that tag into the archive; an image ID carries no name.
func (s *Store) Save(w io.Writer, names []string) error {
	if err := s.save(w, names); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

type savedImage struct {
	rec  record
	tags []string // canonical
}

func (s *Store) save(w io.Writer, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("no images named")
	}
	var imgs []*savedImage
	byID := map[string]*savedImage{}
	s.mu.Lock()
	for _, n := range names {
		r, byName, err := s.idx.lookup(n)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		si := byID[r.ID]
		if si == nil {
			si = &savedImage{rec: *r}
			byID[r.ID] = si
			imgs = append(imgs, si)
		}
		if byName != nil && byName.tag != "" {
			si.tags = append(si.tags, byName.canonical())
		}
	}
	s.mu.Unlock()
	var pins []string
	for _, si := range imgs {
		pins = append(pins, si.rec.ID)
		for _, l := range si.rec.Layers {
			pins = append(pins, l.Digest, l.DiffID)
		}
	}
	s.pin(pins...)
	defer s.unpin(pins...)

	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	written := map[string]bool{}
	writeBytes := func(name string, b []byte) error {
		if err := tw.WriteHeader(saveHeader(name, int64(len(b)))); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := writeBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}

	type dockerEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var (
		index   = v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		entries []dockerEntry
	)
	for _, si := range imgs {
		rec := &si.rec
		cfgHex, _ := digestHex(rec.ID)
		cfg, err := s.readBlob(rec.ID)
		if err != nil {
			return err
		}
		if !written[rec.ID] {
			if err := writeBytes("blobs/sha256/"+cfgHex, cfg); err != nil {
				return err
			}
			written[rec.ID] = true
		}
		mf := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: mustHash(rec.ID)},
		}
		e := dockerEntry{Config: "blobs/sha256/" + cfgHex, RepoTags: []string{}}
		for _, l := range rec.Layers {
			h, err := digestHex(l.DiffID)
			if err != nil {
				return err
			}
			name := "blobs/sha256/" + h
			if !written[l.DiffID] {
				if err := s.writeLayer(tw, name, l); err != nil {
					return err
				}
				written[l.DiffID] = true
			}
			mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: l.DiffSize, Digest: mustHash(l.DiffID)})
			e.Layers = append(e.Layers, name)
		}
		raw, err := json.Marshal(mf)
		if err != nil {
			return err
		}
		md := sha256Digest(sha256Sum(raw))
		mhex, _ := digestHex(md)
		if !written[md] {
			if err := writeBytes("blobs/sha256/"+mhex, raw); err != nil {
				return err
			}
			written[md] = true
		}
		desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: mustHash(md)}
		if len(si.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range si.tags {
			d := desc
			d.Annotations = map[string]string{
				"io.containerd.image.name":          t,
				"org.opencontainers.image.ref.name": t[strings.LastIndexByte(t, ':')+1:],
			}
			index.Manifests = append(index.Manifests, d)
			e.RepoTags = append(e.RepoTags, familiar(t))
		}
		entries = append(entries, e)
	}
	ib, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := writeBytes("index.json", ib); err != nil {
		return err
	}
	mb, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	if err := writeBytes("manifest.json", mb); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// saveHeader is a plain file entry with a fixed time, so saving the same
// images twice gives the same archive.
func saveHeader(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
}

// writeLayer writes a layer's uncompressed tar, decompressing its blob and
// checking the result against the diff ID.
func (s *Store) writeLayer(tw *tar.Writer, name string, l layerRecord) error {
	f, err := os.Open(s.blobPath(l.Digest))
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer f.Close()
	dec, closeDec, err := decompressor(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer closeDec()
	if err := tw.WriteHeader(saveHeader(name, l.DiffSize)); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), dec)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if n != l.DiffSize || sha256Digest(h.Sum(nil)) != l.DiffID {
		return fmt.Errorf("layer %s in the store is corrupt: it no longer matches %s", l.Digest, l.DiffID)
	}
	return nil
}
