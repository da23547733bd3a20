package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the repository this test file is in.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// testConfig is a config over the repository's packaging templates and
// lock, writing into a fresh directory.
func testConfig(t *testing.T) *config {
	t.Helper()
	root := repoRoot(t)
	return &config{
		Version:   "1.2.3-test",
		OutDir:    t.TempDir(),
		BinDir:    filepath.Join(root, "bin"),
		ImageRoot: filepath.Join(root, "build", "image"),
		Packaging: filepath.Join(root, "packaging"),
		LockPath:  filepath.Join(root, "vmimage", "debian.lock"),
		Date:      time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
		URLBase:   "https://example.invalid/releases/1.2.3-test",
		Targets:   allTargets,
		Log:       io.Discard,
	}
}

// builtImage is a private copy of the repository's built guest image for
// arch (others may rebuild build/ while the test runs), or a skip when
// `make image` has not run (CI runs `make build image` before the tests).
func builtImage(t *testing.T, arch string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "build", "image", arch)
	for _, f := range imageFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Skipf("no built %s guest image (%v): run `make image` first (CI runs `make build image` before the tests)", arch, err)
		}
	}
	snap := filepath.Join(t.TempDir(), arch)
	if err := os.Mkdir(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range imageFiles {
		copyFile(t, filepath.Join(dir, f), filepath.Join(snap, f))
	}
	return snap
}

// cliDir holds CLIs the tests build; TestMain removes it.
var cliDir string

// cliBuilds maps a target ("os/arch") to its *cliBuild.
var cliBuilds sync.Map

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmbox-dist-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type cliBuild struct {
	once sync.Once
	path string
	err  error
}

// cliFor returns a vmbox CLI for tg: the repository's bin/ build when it
// is one (bin/vmbox for the host, bin/<os>_<arch>/ from `make cross`),
// else one built now into cliDir.
func cliFor(t *testing.T, tg target) string {
	t.Helper()
	root := repoRoot(t)
	var candidates []string
	if tg.OS == runtime.GOOS && tg.Arch == runtime.GOARCH {
		candidates = append(candidates, filepath.Join(root, "bin", tg.exe()))
	}
	candidates = append(candidates, filepath.Join(root, "bin", tg.OS+"_"+tg.Arch, tg.exe()))
	for _, c := range candidates {
		if checkBinary(c, tg) == nil {
			// A private copy: bin/ may be rebuilt while the test runs.
			snap := filepath.Join(t.TempDir(), tg.exe())
			copyFile(t, c, snap)
			if err := checkBinary(snap, tg); err == nil {
				return snap
			}
		}
	}
	v, _ := cliBuilds.LoadOrStore(tg.String(), &cliBuild{})
	b := v.(*cliBuild)
	b.once.Do(func() {
		b.path = filepath.Join(cliDir, tg.OS+"_"+tg.Arch, tg.exe())
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.path, "./cmd/vmbox")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+tg.OS, "GOARCH="+tg.Arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = &buildError{err: err, out: string(out)}
		}
	})
	if b.err != nil {
		t.Fatalf("build the %s CLI: %v", tg, b.err)
	}
	return b.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.out) }

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requireTools skips the test unless every program is installed.
func requireTools(t *testing.T, why string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (%s)", tool, why)
		}
	}
}
