package cli

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDockerignore(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# comment\n*.log\nbig/\n**/tmp\nsecret*\n!secret-ok\nnode_modules\n!node_modules/keep.js\n"), 0o644)
	ig, err := readDockerignore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"a.log", true}, {"sub/a.log", false}, {"big", true}, {"big/file", true}, {"x/y/tmp", true}, {"tmp", true},
		{"secret.txt", true}, {"secret-ok", false}, {"main.go", false}, {"node_modules/a.js", true}, {"node_modules/keep.js", false},
	} {
		if got := ig.excluded(tt.path); got != tt.want {
			t.Errorf("excluded(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestWriteContext(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("big.bin\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 1<<20), 0o644)
	os.WriteFile(filepath.Join(dir, "main.c"), []byte("int main(){}"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	ig, _ := readDockerignore(dir)
	var buf bytes.Buffer
	if err := writeContext(&buf, dir, ig, ".vmbox-dockerfile", []byte("FROM scratch\n")); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "link" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd") {
			t.Errorf("link: %+v, want a symlink kept as it is", h)
		}
	}
	slices.Sort(names)
	if want := []string{".dockerignore", ".vmbox-dockerfile", "link", "main.c"}; !slices.Equal(names, want) {
		t.Errorf("context holds %v, want %v", names, want)
	}
}

func TestFromAuths(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"reg.example:5000":{"auth":"dTpw"}}}`), 0o600)
	got := fromAuths("FROM --platform=linux/amd64 reg.example:5000/base:1 AS b\nFROM busybox\nFROM $BASE\nRUN true\n")
	if len(got) != 1 || got["reg.example:5000"].Auth != "dTpw" {
		t.Errorf("fromAuths = %+v", got)
	}
}

func TestInside(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		path, want string
		ok         bool
	}{
		{filepath.Join(dir, "Dockerfile"), "Dockerfile", true},
		{filepath.Join(dir, "sub", "Dockerfile.dev"), "sub/Dockerfile.dev", true},
		{filepath.Join(filepath.Dir(dir), "Dockerfile"), "", false},
		{dir, "", false},
	} {
		if got, ok := inside(dir, tt.path); got != tt.want || ok != tt.ok {
			t.Errorf("inside(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}
