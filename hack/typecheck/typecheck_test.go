package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH; the checker runs go list")
	}
}

// TestRealCode checks the host as built for macOS, and that the check
// covered the cgo-only driver file rather than the stub (a build context
// without cgo would pass vacuously).
func TestRealCode(t *testing.T) {
	needGo(t)
	root := repoRoot(t)
	for _, goarch := range []string{"arm64", "amd64"} {
		t.Run(goarch, func(t *testing.T) {
			res, err := check(context.Background(), options{Dir: root, GOOS: "darwin", GOARCH: goarch, Patterns: defaultPatterns})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range res.Errors {
				t.Errorf("%s", d.format(root))
			}
			want := map[string]string{
				"github.com/vmbox/vmbox/host/driver/vz": "vz_darwin.go",
				"github.com/vmbox/vmbox/cmd/vmbox":      "main.go",
			}
			for _, p := range res.Checked {
				if f, ok := want[p.ImportPath]; ok {
					for _, got := range p.Files {
						if filepath.Base(got) == f {
							delete(want, p.ImportPath)
						}
					}
				}
			}
			if len(want) > 0 {
				t.Errorf("not checked: %v (checked %v)", want, res.Checked)
			}
			if res.Deps < 50 {
				t.Errorf("only %d dependencies checked; the standard library and vz/v3 should be among them", res.Deps)
			}
		})
	}
}

// injected is a type error added to a copy of the driver; its line is
// found by its marker.
const injected = `
func injectedTypeError() int {
	var n int
	n = "not an int" // injected
	return n
}
`

// TestInjectedError copies the vz driver into a scratch module that
// depends on this one, adds one type error to vz_darwin.go, and expects
// the checker to fail naming exactly that line: errors in the file the
// macOS build alone compiles are caught.
func TestInjectedError(t *testing.T) {
	needGo(t)
	root := repoRoot(t)
	mod := t.TempDir()
	goVersion := goDirective(t, filepath.Join(root, "go.mod"))
	gomod := fmt.Sprintf(`module example.com/vzfixture

go %s

require (
	github.com/Code-Hex/vz/v3 v3.7.1
	github.com/vmbox/vmbox v0.0.0-00010101000000-000000000000
)

replace github.com/vmbox/vmbox => %s
`, goVersion, root)
	writeFile(t, filepath.Join(mod, "go.mod"), []byte(gomod))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "go.sum"), sum)

	src := filepath.Join(root, "host", "driver", "vz")
	dst := filepath.Join(mod, "vz")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	line := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "vz_darwin.go" {
			b = append(b, injected...)
			for i, l := range strings.Split(string(b), "\n") {
				if strings.HasSuffix(l, "// injected") {
					line = i + 1
				}
			}
		}
		writeFile(t, filepath.Join(dst, name), b)
	}
	if line == 0 {
		t.Fatal("vz_darwin.go not found in " + src)
	}

	var stdout, stderr bytes.Buffer
	// Offline: everything the scratch module needs is in the module cache
	// already (this module builds), so no proxy is asked.
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "off")
	t.Setenv("GONOSUMDB", "*")
	t.Setenv("GOSUMDB", "off")
	code := run(context.Background(), []string{"-C", mod, "-platforms", "darwin/arm64", "./..."}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := strings.TrimSpace(stdout.String())
	want := regexp.MustCompile(fmt.Sprintf(`^\S*vz_darwin\.go:%d:\d+: cannot use "not an int" .* as int value in assignment$`, line))
	if !want.MatchString(out) {
		t.Fatalf("errors:\n%s\nwant exactly one, matching %s", out, want)
	}
}

func goDirective(t *testing.T, gomod string) string {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no go directive", gomod)
	}
	return string(m[1])
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParsePos(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"a/b.go:12:5", "a/b.go:12:5"},
		{"a/b.go:12", "a/b.go:12:0"},
		{"a/b.go", "a/b.go:0:0"},
		{"", ":0:0"},
	} {
		p := parsePos(tt.in)
		if got := fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column); got != tt.want {
			t.Errorf("parsePos(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-platforms", "darwin"}, &stdout, &stderr); code != 2 {
		t.Fatalf("bad platform: exit %d, want 2 (%s)", code, stderr.String())
	}
	if code := run(context.Background(), []string{"-no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
}
