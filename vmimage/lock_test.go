package vmimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	hashA = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744"
	hashB = "b9f76b5271a7ac373fd5e7e1b5b826a71ddd702b42a0d104955ecb1acfffc94b"
)

func TestParseLock(t *testing.T) {
	good := "# comment\n\namd64 busybox-static 1:1.35.0-4+deb12u1+b1 " + hashA + " 928188 pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb\n" +
		"  arm64 ca-certificates 20250419~deb12u2 " + hashB + " 160948 pool/updates/main/c/ca-certificates/ca-certificates_20250419~deb12u2_all.deb  \n"
	l, err := ParseLock(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Arch: "amd64", Name: "busybox-static", Version: "1:1.35.0-4+deb12u1+b1", SHA256: hashA, Size: 928188, Filename: "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb"},
		{Arch: "arm64", Name: "ca-certificates", Version: "20250419~deb12u2", SHA256: hashB, Size: 160948, Filename: "pool/updates/main/c/ca-certificates/ca-certificates_20250419~deb12u2_all.deb"},
	}
	if !reflect.DeepEqual(l.Packages, want) {
		t.Fatalf("parsed %+v", l.Packages)
	}
	if got := l.Arches(); !reflect.DeepEqual(got, []string{"amd64", "arm64"}) {
		t.Errorf("Arches() = %v", got)
	}
	if got := (&Lock{}).Arches(); !reflect.DeepEqual(got, []string{"amd64"}) {
		t.Errorf("empty lock Arches() = %v", got)
	}
	if want[0].debName() != "busybox-static_1.35.0-4+deb12u1+b1_amd64.deb" {
		t.Errorf("debName %q", want[0].debName())
	}

	// Format then parse gives the same lock.
	var buf bytes.Buffer
	if err := l.Format(&buf); err != nil {
		t.Fatal(err)
	}
	l2, err := ParseLock(&buf)
	if err != nil || !reflect.DeepEqual(l2.Packages, want) {
		t.Fatalf("round trip: %v %+v", err, l2)
	}
}

func TestParseLockErrors(t *testing.T) {
	line := func(f ...string) string { return strings.Join(f, " ") + "\n" }
	ok := []string{"amd64", "libc6", "2.36-9+deb12u14", hashA, "2759320", "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb"}
	with := func(i int, v string) string {
		f := append([]string(nil), ok...)
		f[i] = v
		return line(f...)
	}
	tests := []struct {
		name, in, want string
	}{
		{"short hash", with(3, hashA[:63]), "line 1: libc6: sha256 \"" + hashA[:63] + "\" is not 64 lowercase hex digits"},
		{"upper-case hash", with(3, strings.ToUpper(hashA)), "is not 64 lowercase hex digits"},
		{"non-hex hash", with(3, strings.Repeat("g", 64)), "is not 64 lowercase hex digits"},
		{"missing field", line(ok[:5]...), "line 1: want 6 fields"},
		{"extra field", line(append(ok, "x")...), "want 6 fields"},
		{"bad size", with(4, "-3"), "size \"-3\" is not a positive integer"},
		{"bad arch", with(0, "riscv64"), "unsupported architecture \"riscv64\""},
		{"bad version", with(2, "latest"), "invalid version \"latest\""},
		{"bad name", with(1, "Libc6"), "invalid package name"},
		{"escaping filename", with(5, "pool/../../etc/passwd.deb"), "is not a pool/....deb archive path"},
		{"not a deb", with(5, "pool/main/g/glibc/libc6.tar"), "archive path"},
		{"duplicate", line(ok...) + "# x\n" + line(ok...), "line 3: libc6 for amd64 already pinned on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLock(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestLockForArch(t *testing.T) {
	var pkgs []Package
	for i, n := range append([]string{"linux-image-6.1.0-56-cloud-amd64", "linux-image-cloud-amd64"}, basePackages...) {
		if i == 1 {
			continue // the metapackage is never pinned; shows it is not counted
		}
		pkgs = append(pkgs, Package{Arch: "amd64", Name: n, Version: "1.0", SHA256: hashA, Size: 1, Filename: "pool/x/" + n + ".deb"})
	}
	l := &Lock{Packages: pkgs}
	if got, err := l.ForArch("amd64"); err != nil || len(got) != len(basePackages)+1 {
		t.Fatalf("complete set: %d packages, %v", len(got), err)
	}
	if _, err := l.ForArch("arm64"); err == nil || !strings.Contains(err.Error(), "-update-lock -arch arm64") {
		t.Errorf("empty arch: %v", err)
	}
	l.Packages = l.Packages[:len(l.Packages)-1] // drop libuuid1
	if _, err := l.ForArch("amd64"); err == nil || !strings.Contains(err.Error(), "missing libuuid1") {
		t.Errorf("missing package: %v", err)
	}
	l.Packages = l.Packages[1:] // drop the kernel
	if _, err := l.ForArch("amd64"); err == nil || !strings.Contains(err.Error(), "exactly one linux-image-* package (found 0)") {
		t.Errorf("missing kernel: %v", err)
	}
}

// TestRepoLockValid checks the committed lock parses and is complete for amd64.
func TestRepoLockValid(t *testing.T) {
	l, err := ReadLock(filepath.Join(repoRoot(t), DefaultLockPath))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ForArch("amd64"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.deb")
	data := []byte("package bytes")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	good := Package{Name: "x", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	if err := verifyFile(p, good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.SHA256 = hashA
	if err := verifyFile(p, bad); err == nil || !strings.Contains(err.Error(), "sha256 "+good.SHA256+", lock says "+hashA) {
		t.Errorf("wrong hash: %v", err)
	}
	short := good
	short.Size++
	if err := verifyFile(p, short); err == nil || !strings.Contains(err.Error(), "lock says") {
		t.Errorf("wrong size: %v", err)
	}
	if err := verifyFile(filepath.Join(dir, "none.deb"), good); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestKernelDependency(t *testing.T) {
	tests := []struct {
		in, name, version, err string
	}{
		{"linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)", "linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", ""},
		{"foo, linux-image-6.1.0-9-cloud-arm64 (= 6.1.27-1), bar", "linux-image-6.1.0-9-cloud-arm64", "6.1.27-1", ""},
		{"linux-image-6.1.0-56-cloud-amd64 (>= 6.1)", "", "", "no exact version"},
		{"linux-image-cloud-amd64-unsigned", "", "", "no linux-image-<version> dependency"},
	}
	for _, tt := range tests {
		n, v, err := kernelDependency(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: got %v, want error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || n != tt.name || v != tt.version {
			t.Errorf("%q: got %q %q %v", tt.in, n, v, err)
		}
	}
}

func TestParseStanzas(t *testing.T) {
	in := "Package: a\nVersion: 1\nDescription: x\n more text\n  and more\nSHA256: " + hashA + "\n\nPackage: b\nVersion: 2\n"
	got := parseStanzas([]byte(in))
	want := []stanza{{"Package": "a", "Version": "1", "Description": "x", "SHA256": hashA}, {"Package": "b", "Version": "2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

// TestFetchPinGone uses the real apt-cache (no network needed) to check that
// a pinned version the archive does not list gives one clear error that
// says how to update the lock, and that a file already in the cache under
// that name is not used when its hash is wrong.
func TestFetchPinGone(t *testing.T) {
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("apt-cache not installed")
	}
	dir := t.TempDir()
	p := Package{Arch: "amd64", Name: "busybox-static", Version: "1:0.0.1-1", SHA256: hashA, Size: 5,
		Filename: "pool/main/b/busybox/busybox-static_0.0.1-1_amd64.deb"}
	if err := os.WriteFile(filepath.Join(dir, p.debName()), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	fe := &fetcher{cacheDir: dir, logf: t.Logf}
	_, err := fe.fetch(context.Background(), p)
	if !errors.Is(err, ErrPinGone) {
		t.Fatalf("got %v, want ErrPinGone", err)
	}
	for _, want := range []string{"busybox-static 1:0.0.1-1", "apt-get update", UpdateLockCommand + " -arch amd64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestFetchIndexHashMismatch pins the archive's current busybox-static with
// a wrong hash: the fetcher must refuse before downloading anything.
func TestFetchIndexHashMismatch(t *testing.T) {
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("apt-cache not installed")
	}
	s, err := aptShow(context.Background(), "busybox-static:amd64")
	if err != nil {
		t.Skipf("apt has no busybox-static:amd64 in its lists (run apt-get update): %v", err)
	}
	p, err := packageFromStanza("amd64", s)
	if err != nil {
		t.Fatal(err)
	}
	real := p.SHA256
	p.SHA256 = hashB
	fe := &fetcher{cacheDir: t.TempDir(), logf: t.Logf}
	_, err = fe.fetch(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "lists sha256 "+real+" but the lock pins "+hashB) {
		t.Fatalf("got %v", err)
	}
}
