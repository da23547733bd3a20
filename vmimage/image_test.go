package vmimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// This file holds the helpers of the tests that use the real pinned
// packages: they download them into the repository's package cache
// (build/cache/debs, shared with `make image`) unless already there.

// repoRoot finds the module root from the test's working directory.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// requireDebs skips the test when the pinned packages can be neither found
// in the cache nor downloaded, which is the one environment-caused reason
// these tests cannot run. It checks the cache first so that a machine
// without network still runs them once the cache is warm.
func requireDebs(tb testing.TB, arch string) (lockPath, cacheDir string) {
	tb.Helper()
	root := repoRoot(tb)
	lockPath = filepath.Join(root, DefaultLockPath)
	cacheDir = filepath.Join(root, "build", "cache", "debs")
	lock, err := ReadLock(lockPath)
	if err != nil {
		tb.Fatal(err)
	}
	pkgs, err := lock.ForArch(arch)
	if err != nil {
		tb.Fatal(err)
	}
	cached := true
	for _, p := range pkgs {
		if verifyFile(filepath.Join(cacheDir, p.debName()), p) != nil {
			cached = false
			break
		}
	}
	if cached {
		return lockPath, cacheDir
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("pinned %s packages are not in %s and %s is not installed to download them", arch, cacheDir, tool)
		}
	}
	fe := &fetcher{cacheDir: cacheDir, logf: tb.Logf}
	for _, p := range pkgs {
		if _, err := fe.fetch(context.Background(), p); err != nil {
			if errors.Is(err, ErrPinGone) && !aptHasArch(arch) {
				tb.Skipf("pinned %s packages are not cached in %s and apt is not set up for %s (dpkg --add-architecture %s && apt-get update)", arch, cacheDir, arch, arch)
			}
			if errors.Is(err, ErrDownload) {
				tb.Skipf("pinned %s packages are not cached in %s and the Debian archive is unreachable: %v", arch, cacheDir, err)
			}
			tb.Fatal(err) // a lock the archive no longer matches is a real failure
		}
	}
	return lockPath, cacheDir
}

// aptHasArch reports whether apt fetches package lists for arch.
func aptHasArch(arch string) bool {
	native, _ := exec.Command("dpkg", "--print-architecture").Output()
	foreign, _ := exec.Command("dpkg", "--print-foreign-architectures").Output()
	return slices.Contains(strings.Fields(string(native)+" "+string(foreign)), arch)
}

// buildTestInit compiles testdata/testinit, a static /init for the tests.
func buildTestInit(tb testing.TB, dir string) string {
	tb.Helper()
	out, err := compileTestInit(dir, "amd64")
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func compileTestInit(dir, arch string) (string, error) {
	out := filepath.Join(dir, "testinit-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, "./testdata/testinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testinit: %v\n%s", err, b)
	}
	return out, nil
}

// sharedImages are built once per test binary and architecture.
var sharedImages = map[string]*sharedImage{"amd64": {}, "arm64": {}}

type sharedImage struct {
	once sync.Once
	dir  string
	man  *Manifest
	err  error
}

// testImage builds, once per test binary, an image for arch whose /init is
// testinit, and returns its directory and manifest.
func testImage(tb testing.TB, arch string) (string, *Manifest) {
	tb.Helper()
	lockPath, cacheDir := requireDebs(tb, arch)
	s := sharedImages[arch]
	s.once.Do(func() {
		dir, err := os.MkdirTemp("", "vmimage-test-"+arch+"-")
		if err != nil {
			s.err = err
			return
		}
		s.dir = dir
		agent, err := compileTestInit(dir, arch)
		if err != nil {
			s.err = err
			return
		}
		s.man, s.err = Build(context.Background(), Config{
			Arch: arch, Agent: agent, OutDir: filepath.Join(dir, "image"),
			CacheDir: cacheDir, LockPath: lockPath, ZstdLevel: 3, Logf: tb.Logf,
		})
	})
	if s.err != nil {
		tb.Fatalf("build %s test image: %v", arch, s.err)
	}
	return filepath.Join(s.dir, "image"), s.man
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range sharedImages {
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
	}
	os.Exit(code)
}

// TestBuildReproducible builds the amd64 image twice from the same inputs
// and requires byte-identical outputs.
func TestBuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image twice (about a minute); skipped with -short")
	}
	lockPath, cacheDir := requireDebs(t, "amd64")
	tmp := t.TempDir()
	agent := buildTestInit(t, tmp)
	var mans [2]*Manifest
	for i := range mans {
		m, err := Build(context.Background(), Config{
			Arch: "amd64", Agent: agent, OutDir: filepath.Join(tmp, "out", string(rune('a'+i))),
			CacheDir: cacheDir, LockPath: lockPath, Logf: t.Logf,
		})
		if err != nil {
			t.Fatal(err)
		}
		mans[i] = m
	}
	for _, name := range []string{KernelFile, KernelZstFile, InitrdFile, ManifestFile} {
		a, err := os.ReadFile(filepath.Join(tmp, "out", "a", name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(tmp, "out", "b", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs", name)
		}
		t.Logf("%-13s %10d bytes", name, len(a))
	}
	m := mans[0]
	if m.KernelFormat != "pvh-elf" || m.KernelVersion == "" || m.KernelHZ <= 0 {
		t.Errorf("manifest kernel fields: %+v", m)
	}
	if len(m.Modules.Shipped) == 0 || len(m.Packages) != len(basePackages)+1 {
		t.Errorf("manifest lists %d modules and %d packages", len(m.Modules.Shipped), len(m.Packages))
	}
}
