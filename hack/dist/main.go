// Command dist builds vmbox's installable artifacts from the cross-built
// CLIs (bin/<os>_<arch>/vmbox[.exe], `make cross`) and the guest images
// (build/image/<arch>, `make image`), so that an installed vmbox boots its
// VM offline with nothing else to download:
//
//   - dist/vmbox-<version>-<os>-<arch>.tar.gz for linux and darwin:
//     bin/vmbox, share/vmbox/<arch>/{kernel,initrd.img,manifest.json},
//     install.sh and NOTICE under one top-level directory, written
//     reproducibly (sorted entries, fixed mtimes, owner 0);
//   - dist/vmbox-<version>-windows-amd64.msi, built with wixl (msitools):
//     INSTALLDIR\bin\vmbox.exe, INSTALLDIR\share\vmbox\amd64\..., bin on PATH;
//   - dist/vmbox.rb, a Homebrew formula for the darwin tarballs;
//   - dist/SHA256SUMS over all of them.
//
// Every artifact carries the guest image of its own architecture, laid out
// where the CLI's findImage looks (<exe dir>/../share/vmbox/<arch>). A
// target whose guest image has not been built is skipped and reported; a
// target whose CLI is missing is an error. The macOS .pkg is made on a Mac
// from the darwin tarball by packaging/macos/build-pkg.sh.
//
// Run it from the repository root (the Makefile's dist target does):
//
//	go run ./hack/dist -version 1.2.3 -out dist
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmbox/vmbox/vmimage"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

// target is one host platform an artifact is for.
type target struct {
	OS, Arch string
}

func (t target) String() string { return t.OS + "/" + t.Arch }

// exe is the CLI's file name on the target.
func (t target) exe() string {
	if t.OS == "windows" {
		return "vmbox.exe"
	}
	return "vmbox"
}

// allTargets are the platforms `make cross` builds, in artifact order.
var allTargets = []target{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"},
}

func parseTargets(s string) ([]target, error) {
	var out []target
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, t := range allTargets {
			if t.String() == f {
				out = append(out, t)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown target %q (want some of %s)", f, targetList(allTargets))
		}
	}
	return out, nil
}

func targetList(ts []target) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.String())
	}
	return strings.Join(s, ",")
}

// config is one dist run.
type config struct {
	Version   string
	OutDir    string
	BinDir    string // holds <os>_<arch>/vmbox[.exe]
	ImageRoot string // holds <arch>/{kernel,initrd.img,manifest.json}
	Packaging string // the packaging/ templates
	LockPath  string // vmimage's lock: each image must have been built from it
	// CheckAgent requires BinDir/linux_<arch>/vmbox-agent, when present, to
	// be the agent inside the image, so that a release never pairs a CLI
	// with a guest agent from another build.
	CheckAgent bool
	Date       time.Time // the mtime of every archive entry
	URLBase    string    // where the darwin tarballs will be downloaded from (Homebrew formula)
	Targets    []target
	Log        io.Writer
}

func (c *config) logf(format string, args ...any) { fmt.Fprintf(c.Log, format+"\n", args...) }

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	cfg := config{Log: stdout, CheckAgent: true}
	fs.StringVar(&cfg.Version, "version", "", "release version, as stamped into the binaries (required)")
	fs.StringVar(&cfg.OutDir, "out", "dist", "output directory")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory of the cross-built CLIs (<os>_<arch>/vmbox[.exe])")
	fs.StringVar(&cfg.ImageRoot, "image", filepath.Join("build", "image"), "directory of the guest images (<arch>/...)")
	fs.StringVar(&cfg.Packaging, "packaging", "packaging", "directory of the packaging templates")
	fs.StringVar(&cfg.LockPath, "lock", vmimage.DefaultLockPath, "the guest image's package lock")
	date := fs.String("date", "", "timestamp of archive entries, RFC 3339 (default: $SOURCE_DATE_EPOCH, else 2000-01-01T00:00:00Z)")
	fs.StringVar(&cfg.URLBase, "url-base", "", "URL the darwin tarballs are published under, for the Homebrew formula (default https://github.com/vmbox/vmbox/releases/download/<version>)")
	targets := fs.String("targets", targetList(allTargets), "comma-separated os/arch targets")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./hack/dist -version VERSION [-out dist] [-bin bin] [-image build/image] [-targets linux/amd64,...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := checkVersion(cfg.Version); err != nil {
		return err
	}
	var err error
	if cfg.Date, err = parseDate(*date, os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return err
	}
	if cfg.Targets, err = parseTargets(*targets); err != nil {
		return err
	}
	if cfg.URLBase == "" {
		cfg.URLBase = "https://github.com/vmbox/vmbox/releases/download/" + cfg.Version
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	_, err = build(ctx, &cfg)
	return err
}

// checkVersion refuses versions that would make odd file names or break
// the templates' quoting.
func checkVersion(v string) error {
	if v == "" {
		return errors.New("-version is required (the Makefile passes $(VERSION))")
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-+_~", r)
		if !ok {
			return fmt.Errorf("version %q: only letters, digits and . - + _ ~ are allowed", v)
		}
	}
	return nil
}

// parseDate picks the archive timestamp: -date, else SOURCE_DATE_EPOCH,
// else a fixed date, so that the same inputs give the same bytes.
func parseDate(flagVal, epoch string) (time.Time, error) {
	switch {
	case flagVal != "":
		t, err := time.Parse(time.RFC3339, flagVal)
		if err != nil {
			return time.Time{}, fmt.Errorf("-date: %w", err)
		}
		return t.UTC().Truncate(time.Second), nil
	case epoch != "":
		n, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", epoch)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), nil
}

// artifact is one file build wrote into the output directory.
type artifact struct {
	Name   string // base name in OutDir
	Size   int64
	SHA256 string
	Target target
}

// build writes every artifact it can and returns them, SHA256SUMS last.
func build(ctx context.Context, cfg *config) ([]artifact, error) {
	lock, err := vmimage.ReadLock(cfg.LockPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}

	images := map[string]*guestImage{}
	missing := map[string]bool{}
	for _, t := range cfg.Targets {
		if images[t.Arch] != nil || missing[t.Arch] {
			continue
		}
		agent := ""
		if cfg.CheckAgent {
			agent = filepath.Join(cfg.BinDir, "linux_"+t.Arch, "vmbox-agent")
		}
		img, err := loadImage(filepath.Join(cfg.ImageRoot, t.Arch), t.Arch, lock, agent)
		var absent *imageAbsentError
		switch {
		case errors.As(err, &absent):
			missing[t.Arch] = true
			cfg.logf("skipping the %s targets: %s", t.Arch, absent)
		case err != nil:
			return nil, err
		default:
			images[t.Arch] = img
		}
	}

	var arts, darwin []artifact
	var skipped []string
	for _, t := range cfg.Targets {
		img := images[t.Arch]
		if img == nil {
			skipped = append(skipped, t.String())
			continue
		}
		exe := filepath.Join(cfg.BinDir, t.OS+"_"+t.Arch, t.exe())
		if err := checkBinary(exe, t); err != nil {
			return nil, fmt.Errorf("%w (build the CLIs with: make cross)", err)
		}
		var a artifact
		if t.OS == "windows" {
			a, err = buildMSI(ctx, cfg, t, exe, img)
		} else {
			a, err = buildTarball(cfg, t, exe, img)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		if t.OS == "darwin" {
			darwin = append(darwin, a)
		}
		cfg.logf("wrote %s (%s)", filepath.Join(cfg.OutDir, a.Name), humanSize(a.Size))
		arts = append(arts, a)
	}
	if len(skipped) > 0 {
		cfg.logf("skipped %s: no guest image for their architecture", strings.Join(skipped, ", "))
	}
	if len(arts) == 0 {
		return nil, errors.New("nothing to package: no target's guest image has been built")
	}
	if len(darwin) > 0 {
		a, err := writeFormula(cfg, darwin)
		if err != nil {
			return nil, err
		}
		cfg.logf("wrote %s (Homebrew formula for %s)", filepath.Join(cfg.OutDir, a.Name), darwinArchList(darwin))
		arts = append(arts, a)
	}

	sums, err := writeSums(cfg.OutDir, arts)
	if err != nil {
		return nil, err
	}
	arts = append(arts, sums)
	removed, err := removeStale(cfg.OutDir, arts)
	if err != nil {
		return nil, err
	}
	for _, r := range removed {
		cfg.logf("removed stale %s", filepath.Join(cfg.OutDir, r))
	}
	cfg.logf("wrote %s", filepath.Join(cfg.OutDir, sums.Name))
	return arts, nil
}

func darwinArchList(as []artifact) string {
	var s []string
	for _, a := range as {
		s = append(s, a.Target.Arch)
	}
	return strings.Join(s, ", ")
}

func humanSize(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
