package nsinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOverlayOptions(t *testing.T) {
	opts, chdir, err := overlayOptions("/c", []string{"/l/a", "/l/b", "/l/c"})
	if err != nil || chdir != "" || opts != "lowerdir=/l/c:/l/b:/l/a,upperdir=/c/upper,workdir=/c/work" {
		t.Errorf("got %q %q %v", opts, chdir, err)
	}
	opts, _, err = overlayOptions("/c", nil)
	if err != nil || opts != "lowerdir=/c/empty,upperdir=/c/upper,workdir=/c/work" {
		t.Errorf("no layers: %q %v", opts, err)
	}
	if _, _, err := overlayOptions("/c", []string{"/l/a:b"}); err == nil {
		t.Error("accepted a layer path with ':'")
	}
	// Many layers with long paths go relative to their common parent.
	var layers []string
	long := "/store/" + strings.Repeat("x", 60) + "/layers/"
	for i := 0; i < 80; i++ {
		layers = append(layers, long+strings.Repeat("d", 20)+string(rune('a'+i%26))+strings.Repeat("e", i/26))
	}
	opts, chdir, err = overlayOptions("/c", layers)
	if err != nil || chdir != strings.TrimSuffix(long, "/") || len(opts) >= os.Getpagesize() || strings.Contains(opts, long) {
		t.Errorf("long: chdir %q len %d err %v", chdir, len(opts), err)
	}
	// Far too many: refused.
	for i := 0; i < 400; i++ {
		layers = append(layers, long+strings.Repeat("f", 30))
	}
	if _, _, err := overlayOptions("/c", layers); err == nil {
		t.Error("accepted layers that cannot fit one mount")
	}
}

func TestLookCommand(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o644))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	path := "/nonexistent:" + dir
	for _, tc := range []struct {
		name string
		want string
		code int
	}{
		{"tool", filepath.Join(dir, "tool"), 0},
		{"plain", "", ExitNotFound}, // not executable: PATH lookup skips it
		{"missing", "", ExitNotFound},
		{"", "", ExitNotFound},
		{filepath.Join(dir, "tool"), filepath.Join(dir, "tool"), 0},
		{filepath.Join(dir, "plain"), "", ExitNotExecutable},
		{filepath.Join(dir, "sub"), "", ExitNotExecutable},
		{filepath.Join(dir, "nope"), "", ExitNotFound},
	} {
		got, err := LookCommand(tc.name, path)
		if tc.code == 0 {
			if err != nil || got != tc.want {
				t.Errorf("%q: %q %v", tc.name, got, err)
			}
			continue
		}
		se, ok := err.(*StartError)
		if !ok || se.Code != tc.code {
			t.Errorf("%q: %v, want code %d", tc.name, err, tc.code)
		}
	}
}
