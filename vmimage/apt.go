package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrDownload marks a failure to download a package from the archive (as
// opposed to a package that is pinned but gone, or a hash mismatch), so
// callers can tell an unreachable network apart from a broken lock.
var ErrDownload = errors.New("download failed")

// ErrPinGone marks a pinned version that apt's package lists do not have.
var ErrPinGone = errors.New("pinned package version is gone from the Debian archive")

// stanza is one deb822 paragraph from apt-cache show.
type stanza map[string]string

// parseStanzas splits apt-cache show output into paragraphs. Continuation
// lines (multi-line fields such as Description) are dropped; no field used
// here spans lines.
func parseStanzas(b []byte) []stanza {
	var out []stanza
	cur := stanza{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = stanza{}
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// aptShow runs apt-cache show on spec ("name:arch" or "name:arch=version")
// and returns the first stanza. With no version it is the candidate.
func aptShow(ctx context.Context, spec string) (stanza, error) {
	cmd := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", spec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	st := parseStanzas(out)
	if err != nil || len(st) == 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && err != nil {
			msg = err.Error()
		}
		if msg == "" {
			msg = "no such version"
		}
		return nil, fmt.Errorf("apt-cache show %s: %s", spec, msg)
	}
	return st[0], nil
}

// packageFromStanza turns an apt-cache stanza into a lock entry for arch.
func packageFromStanza(arch string, s stanza) (Package, error) {
	size, _ := strconv.ParseInt(s["Size"], 10, 64)
	p := Package{Arch: arch, Name: s["Package"], Version: s["Version"], SHA256: s["SHA256"], Size: size, Filename: s["Filename"]}
	if a := s["Architecture"]; a != arch && a != "all" {
		return Package{}, fmt.Errorf("apt-cache returned %s for architecture %s, want %s", p.Name, a, arch)
	}
	if err := p.validate(); err != nil {
		return Package{}, fmt.Errorf("apt-cache record: %w", err)
	}
	return p, nil
}

// ResolveCurrent asks apt for the current version of every package an image
// of arch needs: the kernel the cloud metapackage currently depends on, and
// basePackages. It uses apt's local package lists; run apt-get update first
// to see the archive's current state.
func ResolveCurrent(ctx context.Context, arch string) ([]Package, error) {
	a, err := lookupArch(arch)
	if err != nil {
		return nil, err
	}
	meta, err := aptShow(ctx, a.kernelMeta+":"+arch)
	if err != nil {
		return nil, archHint(arch, err)
	}
	kname, kver, err := kernelDependency(meta["Depends"])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.kernelMeta, err)
	}
	names := []string{kname + ":" + arch + "=" + kver}
	for _, n := range basePackages {
		names = append(names, n+":"+arch)
	}
	var out []Package
	for _, spec := range names {
		s, err := aptShow(ctx, spec)
		if err != nil {
			// Architecture-independent packages (ca-certificates) are not
			// found as name:arch when arch is not the native architecture.
			name, _, _ := strings.Cut(spec, ":")
			if s2, err2 := aptShow(ctx, name); err2 == nil && s2["Architecture"] == "all" {
				s, err = s2, nil
			}
		}
		if err != nil {
			return nil, archHint(arch, err)
		}
		p, err := packageFromStanza(arch, s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// kernelDependency finds "linux-image-X (= V)" in a metapackage's Depends.
func kernelDependency(depends string) (name, version string, err error) {
	for _, d := range strings.Split(depends, ",") {
		d = strings.TrimSpace(d)
		name, rest, _ := strings.Cut(d, " ")
		if !isKernelPackage(name) {
			continue
		}
		rest = strings.TrimSpace(rest)
		if v, ok := strings.CutPrefix(rest, "(="); ok && strings.HasSuffix(v, ")") {
			return name, strings.TrimSpace(strings.TrimSuffix(v, ")")), nil
		}
		return "", "", fmt.Errorf("kernel dependency %q has no exact version", d)
	}
	return "", "", fmt.Errorf("no linux-image-<version> dependency in %q", depends)
}

// archHint adds the apt setup a foreign architecture needs to an error.
func archHint(arch string, err error) error {
	out, _ := exec.Command("dpkg", "--print-architecture").Output()
	if native := strings.TrimSpace(string(out)); native != "" && native != arch {
		return fmt.Errorf("%w (for %s packages on this %s host apt needs: dpkg --add-architecture %s && apt-get update)", err, arch, native, arch)
	}
	return err
}

// fetcher gets verified .debs into a cache directory.
type fetcher struct {
	cacheDir string
	logf     func(format string, args ...any)
}

// fetch returns the path of p's .deb in the cache, downloading it with
// apt-get if it is not there. The file's size and SHA-256 are checked
// against the lock every time, before anything reads it: a corrupt or
// replaced cache entry is downloaded again, and a download that does not
// match is an error.
func (f *fetcher) fetch(ctx context.Context, p Package) (string, error) {
	dst := filepath.Join(f.cacheDir, p.debName())
	if err := verifyFile(dst, p); err == nil {
		return dst, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		f.logf("cached %s does not match the lock (%v); downloading again", dst, err)
	}
	if err := os.MkdirAll(f.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	// Ask apt's lists first: "the archive no longer has this version" is
	// the common failure (Debian keeps only current kernels) and deserves
	// its own message rather than apt-get's.
	s, err := aptShow(ctx, p.aptSpec())
	if err != nil {
		return "", fmt.Errorf("%w: the lock pins %s %s (%s), which apt's package lists do not have, so the archive has most likely dropped it "+
			"(or the lists are older than the lock: run apt-get update); update the lock with: %s -arch %s [%v]",
			ErrPinGone, p.Name, p.Version, p.Arch, UpdateLockCommand, p.Arch, archHint(p.Arch, err))
	}
	if s["SHA256"] != p.SHA256 {
		return "", fmt.Errorf("%s %s: the archive's index lists sha256 %s but the lock pins %s; the lock is wrong or the archive changed a published version: re-run %s -arch %s and review the diff",
			p.Name, p.Version, s["SHA256"], p.SHA256, UpdateLockCommand, p.Arch)
	}
	tmp, err := os.MkdirTemp(f.cacheDir, ".download-")
	if err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	spec := p.aptSpec()
	args := []string{"download", spec}
	if os.Geteuid() == 0 {
		// As root apt drops to the _apt user, which cannot write our private
		// temporary directory; it would fall back to root with a warning.
		args = append([]string{"-o", "APT::Sandbox::User=root"}, args...)
	}
	f.logf("downloading %s", spec)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: apt-get download %s: %v: %s", ErrDownload, spec, err, lastLines(out, 5))
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return "", err
	}
	if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".deb") {
		return "", fmt.Errorf("%w: apt-get download %s left %d files, want one .deb", ErrDownload, spec, len(ents))
	}
	got := filepath.Join(tmp, ents[0].Name())
	if err := verifyFile(got, p); err != nil {
		return "", fmt.Errorf("downloaded %s does not match the lock: %w", spec, err)
	}
	if err := os.Rename(got, dst); err != nil {
		return "", fmt.Errorf("package cache: %w", err)
	}
	return dst, nil
}

// aptSpec names p's exact version for apt: name:arch=version, or
// name=version for an architecture-independent package, which apt does not
// find under a foreign architecture.
func (p Package) aptSpec() string {
	if strings.HasSuffix(p.Filename, "_all.deb") {
		return p.Name + "=" + p.Version
	}
	return p.Name + ":" + p.Arch + "=" + p.Version
}

// verifyFile checks a file's size and SHA-256 against p.
func verifyFile(path string, p Package) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != p.Size {
		return fmt.Errorf("%s: size %d, lock says %d", filepath.Base(path), st.Size(), p.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != p.SHA256 {
		return fmt.Errorf("%s: sha256 %s, lock says %s", filepath.Base(path), sum, p.SHA256)
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
