package vmimage

import (
	"bytes"
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRootfsWrite(t *testing.T) {
	build := func(order []string) []byte {
		r := rootfs{}
		steps := map[string]func() error{
			"init":    func() error { return r.file("/init", 0o755, []byte("agent")) },
			"link":    func() error { return r.symlink("/bin/sh", "busybox") },
			"deep":    func() error { return r.file("/lib/modules/k/kernel/x.ko", 0o644, []byte("ko")) },
			"tmp":     func() error { return r.dir("/tmp", 0o1777) },
			"console": func() error { return r.add("/dev/console", &fsEntry{typ: fsCharDev, perm: 0o600, major: 5, minor: 1}) },
		}
		for _, s := range order {
			if err := steps[s](); err != nil {
				t.Fatal(err)
			}
		}
		var b bytes.Buffer
		if err := r.write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a := build([]string{"init", "link", "deep", "tmp", "console"})
	b := build([]string{"console", "tmp", "deep", "link", "init"})
	if !bytes.Equal(a, b) {
		t.Fatal("archive depends on the order entries were added")
	}
	bin, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed")
	}
	cmd := exec.Command(bin, "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(a)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "bin\nbin/sh\ndev\ndev/console\ninit\nlib\nlib/modules\nlib/modules/k\nlib/modules/k/kernel\nlib/modules/k/kernel/x.ko\ntmp\n"
	if string(out) != want {
		t.Errorf("cpio -t:\n%s\nwant (parents created, sorted):\n%s", out, want)
	}
}

func TestRootfsConflicts(t *testing.T) {
	r := rootfs{}
	if err := r.file("/etc/a", 0o644, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := r.file("/etc/a", 0o644, []byte("1")); err != nil {
		t.Errorf("identical re-add: %v", err)
	}
	if err := r.file("/etc/a", 0o644, []byte("2")); err == nil || !strings.Contains(err.Error(), "added twice") {
		t.Errorf("conflicting re-add: %v", err)
	}
	if err := r.symlink("/etc/a", "b"); err == nil {
		t.Error("symlink over file accepted")
	}
	if err := r.file("/etc/a/b", 0o644, nil); err == nil {
		t.Error("file below a file accepted")
	}
	// An explicit directory mode wins over an implied parent's.
	r.file("/tmp/x", 0o644, nil)
	r.dir("/tmp", 0o1777)
	if r["/tmp"].perm != 0o1777 {
		t.Errorf("/tmp perm %#o", r["/tmp"].perm)
	}
}

func TestCheckStaticExecutable(t *testing.T) {
	amd, _ := lookupArch("amd64")
	static := mkELF(elf.EM_X86_64, 0x401000, []testSeg{{typ: elf.PT_LOAD, off: 0x1000, vaddr: 0x401000, paddr: 0x401000, data: []byte{0xc3}}})
	if err := checkStaticExecutable(static, amd); err != nil {
		t.Errorf("static: %v", err)
	}
	dynamic := mkELF(elf.EM_X86_64, 0x401000, []testSeg{{typ: elf.PT_INTERP, off: 0x1000, data: []byte("/lib64/ld-linux-x86-64.so.2\x00")}})
	if err := checkStaticExecutable(dynamic, amd); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("dynamic: %v", err)
	}
	arm := mkELF(elf.EM_AARCH64, 0, nil)
	if err := checkStaticExecutable(arm, amd); err == nil || !strings.Contains(err.Error(), "image is amd64") {
		t.Errorf("wrong arch: %v", err)
	}
	if err := checkStaticExecutable([]byte("#!/bin/sh\necho hi\n"), amd); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("script: %v", err)
	}
}

// TestSharedClosure resolves mke2fs's libraries in the real pinned amd64
// packages, and checks that a missing library is named in the error.
func TestSharedClosure(t *testing.T) {
	lockPath, cacheDir := requireDebs(t, "amd64")
	lock, err := ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := lock.ForArch("amd64")
	if err != nil {
		t.Fatal(err)
	}
	load := func(skip string) *tree {
		tr := newTree()
		for _, p := range pkgs {
			if isKernelPackage(p.Name) || p.Name == skip {
				continue
			}
			if err := tr.addDeb(context.Background(), filepath.Join(cacheDir, p.debName()), p.Name); err != nil {
				t.Fatal(err)
			}
		}
		return tr
	}
	a, _ := lookupArch("amd64")
	got, err := sharedClosure(load(""), a, "/sbin/mke2fs")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/lib/x86_64-linux-gnu/libc.so.6",
		"/lib/x86_64-linux-gnu/libcom_err.so.2",
		"/lib/x86_64-linux-gnu/libe2p.so.2",
		"/lib/x86_64-linux-gnu/libext2fs.so.2",
		"/lib64/ld-linux-x86-64.so.2",
		"/sbin/mke2fs",
		"/usr/lib/x86_64-linux-gnu/libblkid.so.1",
		"/usr/lib/x86_64-linux-gnu/libuuid.so.1",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("closure lacks %s: %v", w, got)
		}
	}
	_, err = sharedClosure(load("libuuid1"), a, "/sbin/mke2fs")
	if err == nil || !strings.Contains(err.Error(), "needs libuuid.so.1") || !strings.Contains(err.Error(), "basePackages") {
		t.Errorf("missing libuuid1: %v", err)
	}
}
