package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmbox/vmbox/vmimage"
)

// imageFiles are the guest image files an installation needs, in the order
// they are installed. kernel.zst is not shipped: the CLI boots the
// uncompressed kernel, and the archives and the MSI compress it anyway.
var imageFiles = []string{vmimage.KernelFile, vmimage.InitrdFile, vmimage.ManifestFile}

// guestImage is a verified guest image directory.
type guestImage struct {
	Arch     string
	Dir      string
	Manifest vmimage.Manifest
}

// path is the file name inside the image directory.
func (g *guestImage) path(name string) string { return filepath.Join(g.Dir, name) }

// imageAbsentError says a guest image has not been built: its target is
// skipped rather than failing the run.
type imageAbsentError struct{ dir, arch string }

func (e *imageAbsentError) Error() string {
	return fmt.Sprintf("no %s guest image in %s (build it with: make image ARCH=%s)", e.arch, e.dir, e.arch)
}

// loadImage reads the guest image in dir and checks that it is whole and
// current: its manifest is for arch, its kernel and initrd have the
// digests the manifest records, it was built from lock's packages for arch,
// and (when agent names an existing file) its /init is that agent. A
// directory without a kernel is an *imageAbsentError.
func loadImage(dir, arch string, lock *vmimage.Lock, agent string) (*guestImage, error) {
	if _, err := os.Stat(filepath.Join(dir, vmimage.KernelFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, &imageAbsentError{dir: dir, arch: arch}
	}
	g := &guestImage{Arch: arch, Dir: dir}
	b, err := os.ReadFile(g.path(vmimage.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("guest image %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &g.Manifest); err != nil {
		return nil, fmt.Errorf("guest image %s: %s: %w", dir, vmimage.ManifestFile, err)
	}
	m := &g.Manifest
	if m.Arch != arch {
		return nil, fmt.Errorf("guest image %s is for %q, not %s", dir, m.Arch, arch)
	}
	for _, name := range []string{vmimage.KernelFile, vmimage.InitrdFile} {
		want, ok := m.Outputs[name]
		if !ok {
			return nil, fmt.Errorf("guest image %s: manifest records no digest for %s", dir, name)
		}
		got, err := fileDigest(g.path(name))
		if err != nil {
			return nil, fmt.Errorf("guest image %s: %w", dir, err)
		}
		if got != want {
			return nil, fmt.Errorf("guest image %s: %s is not the file its manifest describes (sha256 %s, size %d; want %s, %d): rebuild it with: make image ARCH=%s",
				dir, name, got.SHA256, got.Size, want.SHA256, want.Size, arch)
		}
	}
	pinned, err := lock.ForArch(arch)
	if err != nil {
		return nil, err
	}
	if d := packageDiff(m.Packages, pinned); d != "" {
		return nil, fmt.Errorf("guest image %s was not built from the current lock (%s): rebuild it with: make image ARCH=%s", dir, d, arch)
	}
	if agent != "" {
		got, err := fileDigest(agent)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Nothing to compare with: the image is all we have.
		case err != nil:
			return nil, err
		case got != m.Agent:
			return nil, fmt.Errorf("guest image %s holds another agent than %s (sha256 %s, not %s): rebuild it with: make image ARCH=%s",
				dir, agent, m.Agent.SHA256, got.SHA256, arch)
		}
	}
	return g, nil
}

// packageDiff describes how the image's packages differ from the lock's,
// or returns "" when they are the same set.
func packageDiff(image, lock []vmimage.Package) string {
	key := func(p vmimage.Package) string { return p.Name + "=" + p.Version + "@" + p.SHA256 }
	in := map[string]bool{}
	for _, p := range image {
		in[key(p)] = true
	}
	var diffs []string
	for _, p := range lock {
		if !in[key(p)] {
			diffs = append(diffs, "lock has "+p.Name+" "+p.Version)
		}
		delete(in, key(p))
	}
	var extra []string
	for k := range in {
		extra = append(extra, k)
	}
	slices.Sort(extra)
	for _, k := range extra {
		name, rest, _ := strings.Cut(k, "=")
		ver, _, _ := strings.Cut(rest, "@")
		diffs = append(diffs, "image has "+name+" "+ver)
	}
	return strings.Join(diffs, ", ")
}

func fileDigest(path string) (vmimage.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return vmimage.Digest{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return vmimage.Digest{}, fmt.Errorf("read %s: %w", path, err)
	}
	return vmimage.Digest{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
