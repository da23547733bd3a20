package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// entry is one member of an archive: a directory, or a regular file whose
// content is data or, when src is set, the file src.
type entry struct {
	name string // slash-separated, relative, no trailing slash
	mode int64
	dir  bool
	src  string
	data []byte
}

// tarballName is the archive's file name, and without ".tar.gz" its
// top-level directory.
func tarballName(version string, t target) string {
	return fmt.Sprintf("vmbox-%s-%s-%s.tar.gz", version, t.OS, t.Arch)
}

// tarballEntries is the layout of a linux or darwin archive: the CLI in
// bin/, the guest image where findImage looks (../share/vmbox/<arch> from
// the binary), the installer and the notice, under one top directory.
func tarballEntries(cfg *config, t target, exe string, img *guestImage) ([]entry, error) {
	data := newPackageData(cfg.Version, t, img)
	install, err := render(cfg.Packaging, "install.sh.tmpl", data)
	if err != nil {
		return nil, err
	}
	notice, err := render(cfg.Packaging, "NOTICE.tmpl", data)
	if err != nil {
		return nil, err
	}
	top := strings.TrimSuffix(tarballName(cfg.Version, t), ".tar.gz")
	es := []entry{
		{name: top + "/bin/vmbox", mode: 0o755, src: exe},
		{name: top + "/install.sh", mode: 0o755, data: install},
		{name: top + "/NOTICE", mode: 0o644, data: notice},
	}
	for _, f := range imageFiles {
		es = append(es, entry{name: top + "/share/vmbox/" + t.Arch + "/" + f, mode: 0o644, src: img.path(f)})
	}
	return es, nil
}

func buildTarball(cfg *config, t target, exe string, img *guestImage) (artifact, error) {
	es, err := tarballEntries(cfg, t, exe, img)
	if err != nil {
		return artifact{}, err
	}
	name := tarballName(cfg.Version, t)
	sum, size, err := writeAtomic(filepath.Join(cfg.OutDir, name), func(w io.Writer) error {
		return writeTarGz(w, es, cfg.Date)
	})
	if err != nil {
		return artifact{}, err
	}
	return artifact{Name: name, Size: size, SHA256: sum, Target: t}, nil
}

// writeTarGz writes es as a gzip-compressed tar that depends only on the
// entries and mtime: parent directories are added, members are sorted by
// name, every member is owned by 0:0 with no user or group name and has
// mtime as its modification time, and the gzip header has no name or time.
func writeTarGz(w io.Writer, es []entry, mtime time.Time) error {
	es = withParents(es)
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	for i := 1; i < len(es); i++ {
		if es[i].name == es[i-1].name {
			return fmt.Errorf("archive member %s twice", es[i].name)
		}
	}
	// Level 6: level 9 takes four times as long for 0.2% less on the
	// guest image.
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range es {
		if err := writeEntry(tw, e, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// withParents returns es plus a 0755 directory entry for every missing
// ancestor of its members.
func withParents(es []entry) []entry {
	have := map[string]bool{}
	for _, e := range es {
		have[e.name] = true
	}
	out := append([]entry(nil), es...)
	for _, e := range es {
		for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
			if !have[d] {
				have[d] = true
				out = append(out, entry{name: d, mode: 0o755, dir: true})
			}
		}
	}
	return out
}

func writeEntry(tw *tar.Writer, e entry, mtime time.Time) error {
	if strings.HasPrefix(e.name, "/") || strings.Contains("/"+e.name+"/", "/../") {
		return fmt.Errorf("archive member %q is not a relative path", e.name)
	}
	h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Uid: 0, Gid: 0}
	if e.dir {
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		return tw.WriteHeader(h)
	}
	h.Typeflag = tar.TypeReg
	var r io.Reader = bytes.NewReader(e.data)
	h.Size = int64(len(e.data))
	if e.src != "" {
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", e.src)
		}
		h.Size, r = st.Size(), f
	}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("archive %s: %w", e.name, err)
	}
	if n != h.Size {
		return fmt.Errorf("archive %s: %s changed size while being read", e.name, e.src)
	}
	return nil
}

// writeAtomic writes a file through fill into a temporary file beside
// path and renames it into place, so a reader (or a later run) never sees
// a partial artifact. It returns the file's SHA-256 and size.
func writeAtomic(dst string, fill func(io.Writer) error) (string, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := fill(cw); err != nil {
		f.Close()
		return "", 0, fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
