package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	kernel, disk := filepath.Join(dir, "kernel"), filepath.Join(dir, "data.img")
	writeFile(t, kernel, []byte("Image"))
	writeFile(t, disk, nil)
	good := Spec{
		Name: "default", Dir: dir, Arch: "arm64", CPUs: 2, MemoryMiB: 1024,
		Kernel: kernel, Initrds: []string{"base.img", filepath.Join(dir, "inst.cpio")},
		Cmdline: []string{"x=1"}, DataDisk: disk,
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		edit func(*Spec)
		want func(*Spec) // good as Resolve should return it after edit
		err  string
	}{
		{"absolute already", func(*Spec) {}, func(s *Spec) {
			s.Initrds = []string{filepath.Join(cwd, "base.img"), filepath.Join(dir, "inst.cpio")}
			s.Console = filepath.Join(dir, "console.log")
		}, ""},
		{"relative paths", func(s *Spec) {
			s.Dir, s.Kernel, s.DataDisk = rel(t, cwd, dir), rel(t, cwd, kernel), rel(t, cwd, disk)
			s.Console = "con.log"
		}, func(s *Spec) {
			s.Initrds = []string{filepath.Join(cwd, "base.img"), filepath.Join(dir, "inst.cpio")}
			s.Console = filepath.Join(cwd, "con.log")
		}, ""},
		{"console given", func(s *Spec) { s.Console = filepath.Join(dir, "elsewhere") }, func(s *Spec) {
			s.Initrds = []string{filepath.Join(cwd, "base.img"), filepath.Join(dir, "inst.cpio")}
			s.Console = filepath.Join(dir, "elsewhere")
		}, ""},
		{"no disk, no initrds", func(s *Spec) { s.DataDisk, s.Initrds = "", nil }, func(s *Spec) {
			s.DataDisk, s.Initrds = "", nil
			s.Console = filepath.Join(dir, "console.log")
		}, ""},
		{"no CPU", func(s *Spec) { s.CPUs = 0 }, nil, "0 CPUs: need at least 1"},
		{"little memory", func(s *Spec) { s.MemoryMiB = 64 }, nil, "64 MiB of memory: need at least 128"},
		{"no dir", func(s *Spec) { s.Dir = "" }, nil, "spec needs an instance directory and a kernel"},
		{"no kernel", func(s *Spec) { s.Kernel = "" }, nil, "spec needs an instance directory and a kernel"},
		{"missing dir", func(s *Spec) { s.Dir = filepath.Join(dir, "nope") }, nil, "no such file or directory"},
		{"dir is a file", func(s *Spec) { s.Dir = kernel }, nil, kernel + " is not a directory"},
		{"missing kernel", func(s *Spec) { s.Kernel = filepath.Join(dir, "nope") }, nil, "kernel: "},
		{"missing disk", func(s *Spec) { s.DataDisk = filepath.Join(dir, "nope") }, nil, "data disk: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			in.Initrds = append([]string(nil), good.Initrds...)
			tt.edit(&in)
			callerInitrds := append([]string(nil), in.Initrds...)
			got, err := in.Resolve("console.log")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Resolve = %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := good
			tt.want(&want)
			if !equalSpec(got, want) {
				t.Errorf("Resolve =\n %+v\nwant\n %+v", got, want)
			}
			if !equalStrings(in.Initrds, callerInitrds) {
				t.Errorf("the caller's initrds changed: %q, was %q", in.Initrds, callerInitrds)
			}
		})
	}
}

// rel is path relative to the working directory cwd.
func rel(t *testing.T, cwd, path string) string {
	t.Helper()
	r, err := filepath.Rel(cwd, path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func equalSpec(a, b Spec) bool {
	return a.Name == b.Name && a.Dir == b.Dir && a.Arch == b.Arch && a.CPUs == b.CPUs &&
		a.MemoryMiB == b.MemoryMiB && a.Kernel == b.Kernel && equalStrings(a.Initrds, b.Initrds) &&
		equalStrings(a.Cmdline, b.Cmdline) && a.DataDisk == b.DataDisk && a.Console == b.Console
}

func equalStrings(a, b []string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
