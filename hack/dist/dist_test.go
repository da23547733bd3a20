package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/vmimage"
)

func TestMSIVersion(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "v1.2.3", want: "1.2.3"},
		{in: "1.2.3", want: "1.2.3"},
		{in: "v1.2", want: "1.2.0"},
		{in: "v2", want: "2.0.0"},
		{in: "v1.2.3-4-gabcdef0", want: "1.2.3.4"},
		{in: "v1.2.3-4-gabcdef0-dirty", want: "1.2.3.4"},
		{in: "v1.2.3-rc1", want: "1.2.3"},
		{in: "cca621b", want: "0.0.0"},
		{in: "0.0.0-dev", want: "0.0.0"},
		{in: "db62066-dirty", want: "0.0.0"},
		{in: "473df45-dirty", want: "0.0.0"},
		{in: "1234567", want: "0.0.0"},
		{in: "1234567-dirty", want: "0.0.0"},
		{in: "2", want: "0.0.0"},
		{in: "1.2", want: "1.2.0"},
		{in: "0.9.1", want: "0.9.1"},
		{in: "v255.255.65535", want: "255.255.65535"},
		{in: "v256.0.0", bad: true},
		{in: "v1.256.0", bad: true},
		{in: "v1.2.65536", bad: true},
	} {
		got, err := msiVersion(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("msiVersion(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("msiVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestShortNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		valid bool
		short string
	}{
		{"kernel", true, ""},
		{"initrd.img", true, ""},
		{"vmbox.exe", true, ""},
		{"NOTICE.txt", true, ""},
		{"manifest.json", false, "MANIFE~1.JSO"},
		{"kernel.zst", true, ""},
		{"averyverylongname", false, "AVERYV~1"},
		{"a.b.c", false, "AB~1.C"},
		{"with space.txt", false, "WITHSP~1.TXT"},
	} {
		if got := isShortName(tc.name); got != tc.valid {
			t.Errorf("isShortName(%q) = %v, want %v", tc.name, got, tc.valid)
		}
		if !tc.valid {
			if got := shortName(tc.name); got != tc.short {
				t.Errorf("shortName(%q) = %q, want %q", tc.name, got, tc.short)
			}
			if !isShortName(shortName(tc.name)) {
				t.Errorf("shortName(%q) = %q is not itself a short name", tc.name, shortName(tc.name))
			}
		}
	}
	if _, err := msiFixups("1.0.0", []msiFile{{ID: "a", Name: "manifest.json"}, {ID: "b", Name: "manifest.jsonx"}}); err == nil {
		t.Error("msiFixups accepted two files with the same short name")
	}
}

func TestCheckVersionAndDate(t *testing.T) {
	for _, v := range []string{"1.2.3", "v1.2.3-4-gabc-dirty", "0.0.0-dev", "1.0+build_7~rc"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("checkVersion(%q): %v", v, err)
		}
	}
	for _, v := range []string{"", "1.0/evil", "a b", `x"y`, "v1;rm"} {
		if err := checkVersion(v); err == nil {
			t.Errorf("checkVersion(%q) accepted it", v)
		}
	}
	for _, tc := range []struct {
		flag, epoch string
		want        time.Time
		bad         bool
	}{
		{flag: "2026-11-22T17:42:37+01:00", want: time.Date(2026, 11, 22, 16, 42, 37, 0, time.UTC)},
		{epoch: "86400", want: time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)},
		{flag: "2026-01-01T00:00:00Z", epoch: "5", want: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{want: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{flag: "yesterday", bad: true},
		{epoch: "soon", bad: true},
	} {
		got, err := parseDate(tc.flag, tc.epoch)
		if tc.bad != (err != nil) || !got.Equal(tc.want) {
			t.Errorf("parseDate(%q, %q) = %v, %v", tc.flag, tc.epoch, got, err)
		}
	}
	if _, err := parseTargets("linux/amd64,plan9/386"); err == nil {
		t.Error("parseTargets accepted plan9/386")
	}
	ts, err := parseTargets("windows/amd64, linux/arm64")
	if err != nil || len(ts) != 2 || ts[0] != (target{"windows", "amd64"}) || ts[1] != (target{"linux", "arm64"}) {
		t.Errorf("parseTargets = %v, %v", ts, err)
	}
}

// tarMember is what a test reads back from an archive.
type tarMember struct {
	hdr  *tar.Header
	data []byte
}

func readTarGz(t *testing.T, b []byte) []tarMember {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header has name %q, time %v: not reproducible", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	var ms []tarMember
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, tarMember{h, data})
	}
}

func TestWriteTarGzIsReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "big")
	if err := os.WriteFile(src, bytes.Repeat([]byte("vmbox"), 100000), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	entries := func() []entry {
		return []entry{
			{name: "top/share/vmbox/amd64/kernel", mode: 0o644, src: src},
			{name: "top/bin/vmbox", mode: 0o755, data: []byte("#!/bin/sh\n")},
			{name: "top/NOTICE", mode: 0o644, data: []byte("notice\n")},
		}
	}
	var a, b bytes.Buffer
	if err := writeTarGz(&a, entries(), mtime); err != nil {
		t.Fatal(err)
	}
	// A later file time, another owner and other permissions on disk must
	// not change the archive.
	if err := os.Chtimes(src, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := writeTarGz(&b, entries(), mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same entries differ")
	}

	ms := readTarGz(t, a.Bytes())
	var names []string
	for _, m := range ms {
		names = append(names, m.hdr.Name)
		if m.hdr.Uid != 0 || m.hdr.Gid != 0 || m.hdr.Uname != "" || m.hdr.Gname != "" {
			t.Errorf("%s owned by %d(%q):%d(%q), want 0:0 without names", m.hdr.Name, m.hdr.Uid, m.hdr.Uname, m.hdr.Gid, m.hdr.Gname)
		}
		if !m.hdr.ModTime.Equal(mtime) {
			t.Errorf("%s mtime %v, want %v", m.hdr.Name, m.hdr.ModTime, mtime)
		}
	}
	want := []string{
		"top/", "top/NOTICE", "top/bin/", "top/bin/vmbox", "top/share/", "top/share/vmbox/",
		"top/share/vmbox/amd64/", "top/share/vmbox/amd64/kernel",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("members %q, want %q (sorted, with every parent directory)", names, want)
	}
	modes := map[string]int64{"top/": 0o755, "top/bin/vmbox": 0o755, "top/NOTICE": 0o644, "top/share/vmbox/amd64/kernel": 0o644}
	for _, m := range ms {
		if w, ok := modes[m.hdr.Name]; ok && m.hdr.Mode != w {
			t.Errorf("%s mode %o, want %o", m.hdr.Name, m.hdr.Mode, w)
		}
		if m.hdr.Name == "top/share/vmbox/amd64/kernel" && len(m.data) != 500000 {
			t.Errorf("kernel member has %d bytes, want 500000", len(m.data))
		}
	}

	var c bytes.Buffer
	if err := writeTarGz(&c, entries(), mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("the archive does not depend on the timestamp it was given")
	}
	if err := writeTarGz(io.Discard, append(entries(), entry{name: "top/NOTICE", data: []byte("x")}), mtime); err == nil {
		t.Error("a duplicate member was accepted")
	}
	if err := writeTarGz(io.Discard, []entry{{name: "top/../../etc/passwd", data: []byte("x")}}, mtime); err == nil {
		t.Error("a member escaping the archive root was accepted")
	}
}

// fakeImage writes a small but well-formed image directory for arch, made
// from lock's packages, and returns its directory and manifest.
func fakeImage(t *testing.T, arch string, lock *vmimage.Lock, agent []byte) (string, *vmimage.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pkgs, err := lock.ForArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	m := &vmimage.Manifest{Arch: arch, KernelVersion: "6.1.0-test", Packages: pkgs, Outputs: map[string]vmimage.Digest{}}
	for name, content := range map[string]string{vmimage.KernelFile: "kernel " + arch, vmimage.InitrdFile: "initrd " + arch} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := fileDigest(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Outputs[name] = d
	}
	ap := filepath.Join(t.TempDir(), "agent")
	if err := os.WriteFile(ap, agent, 0o755); err != nil {
		t.Fatal(err)
	}
	if m.Agent, err = fileDigest(ap); err != nil {
		t.Fatal(err)
	}
	writeManifest(t, dir, m)
	return dir, m
}

func writeManifest(t *testing.T, dir string, m *vmimage.Manifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, vmimage.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadImageChecksTheImage(t *testing.T) {
	lock, err := vmimage.ReadLock(filepath.Join(repoRoot(t), "vmimage", "debian.lock"))
	if err != nil {
		t.Fatal(err)
	}
	agent := []byte("the agent")
	writeAgent := func(t *testing.T, b []byte) string {
		p := filepath.Join(t.TempDir(), "vmbox-agent")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		arch   string // asked for; the image is amd64
		agent  func(t *testing.T) string
		tamper func(t *testing.T, dir string, m *vmimage.Manifest)
		want   string // error substring, "" for success
	}{
		{name: "whole image", arch: "amd64"},
		{name: "matching agent", arch: "amd64", agent: func(t *testing.T) string { return writeAgent(t, agent) }},
		{name: "agent not built", arch: "amd64", agent: func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }},
		{name: "other agent", arch: "amd64", agent: func(t *testing.T) string { return writeAgent(t, []byte("newer agent")) }, want: "holds another agent"},
		{name: "wrong arch", arch: "arm64", want: `is for "amd64", not arm64`},
		{name: "kernel changed", arch: "amd64", want: "kernel is not the file its manifest describes", tamper: func(t *testing.T, dir string, _ *vmimage.Manifest) {
			if err := os.WriteFile(filepath.Join(dir, vmimage.KernelFile), []byte("another kernel"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "initrd missing", arch: "amd64", want: "initrd.img", tamper: func(t *testing.T, dir string, _ *vmimage.Manifest) {
			if err := os.Remove(filepath.Join(dir, vmimage.InitrdFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "manifest missing", arch: "amd64", want: "manifest.json", tamper: func(t *testing.T, dir string, _ *vmimage.Manifest) {
			if err := os.Remove(filepath.Join(dir, vmimage.ManifestFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "old package", arch: "amd64", want: "not built from the current lock (lock has libc6", tamper: func(t *testing.T, dir string, m *vmimage.Manifest) {
			for i := range m.Packages {
				if m.Packages[i].Name == "libc6" {
					m.Packages[i].Version = "2.31-13"
				}
			}
			writeManifest(t, dir, m)
		}},
		{name: "extra package", arch: "amd64", want: "image has hello 2.10", tamper: func(t *testing.T, dir string, m *vmimage.Manifest) {
			m.Packages = append(m.Packages, vmimage.Package{Arch: "amd64", Name: "hello", Version: "2.10"})
			writeManifest(t, dir, m)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, m := fakeImage(t, "amd64", lock, agent)
			if tc.tamper != nil {
				tc.tamper(t, dir, m)
			}
			agentPath := ""
			if tc.agent != nil {
				agentPath = tc.agent(t)
			}
			img, err := loadImage(dir, tc.arch, lock, agentPath)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if img.Manifest.KernelVersion != "6.1.0-test" || img.Arch != "amd64" {
					t.Errorf("loaded %+v", img)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadImage: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		_, err := loadImage(filepath.Join(t.TempDir(), "arm64"), "arm64", lock, "")
		var absent *imageAbsentError
		if !errors.As(err, &absent) || !strings.Contains(err.Error(), "make image ARCH=arm64") {
			t.Fatalf("loadImage of nothing: %v, want an imageAbsentError naming make image ARCH=arm64", err)
		}
	})
}

func TestCheckBinary(t *testing.T) {
	host := target{runtime.GOOS, runtime.GOARCH}
	cli := cliFor(t, host)
	if err := checkBinary(cli, host); err != nil {
		t.Fatal(err)
	}
	other := target{"darwin", "arm64"}
	if host == other {
		other = target{"linux", "amd64"}
	}
	if err := checkBinary(cli, other); err == nil || !strings.Contains(err.Error(), "is built for "+host.String()) {
		t.Errorf("checkBinary as %s: %v", other, err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(self, host); err == nil || !strings.Contains(err.Error(), "not github.com/vmbox/vmbox/cmd/vmbox") {
		t.Errorf("checkBinary accepted the test binary as the CLI: %v", err)
	}
	notGo := filepath.Join(t.TempDir(), "vmbox")
	if err := os.WriteFile(notGo, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(notGo, host); err == nil {
		t.Error("checkBinary accepted a shell script")
	}
}

func TestFormula(t *testing.T) {
	for _, tc := range []struct {
		name     string
		arches   []string
		onlyArch string
	}{
		{"both", []string{"amd64", "arm64"}, ""},
		{"intel only", []string{"amd64"}, ":x86_64"},
		{"arm only", []string{"arm64"}, ":arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			var darwin []artifact
			for i, a := range tc.arches {
				darwin = append(darwin, artifact{
					Name:   tarballName(cfg.Version, target{"darwin", a}),
					SHA256: strings.Repeat(string(rune('a'+i)), 64),
					Target: target{"darwin", a},
				})
			}
			art, err := writeFormula(cfg, darwin)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(cfg.OutDir, formulaName))
			if err != nil {
				t.Fatal(err)
			}
			rb := string(b)
			if art.Name != formulaName || art.Size != int64(len(b)) || art.SHA256 != sha256File(t, filepath.Join(cfg.OutDir, formulaName)) {
				t.Errorf("artifact %+v does not describe the file", art)
			}
			for _, want := range []string{
				"class Vmbox < Formula",
				`version "1.2.3-test"`,
				"depends_on :macos",
				`bin.install "bin/vmbox"`,
				`(share/"vmbox").install Dir["share/vmbox/*"]`,
				`shell_output("#{bin}/vmbox version 2>&1", 1)`,
				`assert_match "Client:", output`,
			} {
				if !strings.Contains(rb, want) {
					t.Errorf("formula lacks %q:\n%s", want, rb)
				}
			}
			for _, a := range darwin {
				block := map[string]string{"amd64": "on_intel", "arm64": "on_arm"}[a.Target.Arch]
				want := block + " do\n    url \"" + cfg.URLBase + "/" + a.Name + "\"\n    sha256 \"" + a.SHA256 + "\"\n  end"
				if !strings.Contains(rb, want) {
					t.Errorf("formula lacks\n%s\nin:\n%s", want, rb)
				}
			}
			if got := strings.Contains(rb, "depends_on arch:"); got != (tc.onlyArch != "") || (got && !strings.Contains(rb, "depends_on arch: "+tc.onlyArch+"\n")) {
				t.Errorf("formula's arch restriction is wrong (want %q):\n%s", tc.onlyArch, rb)
			}
			if ruby, err := exec.LookPath("ruby"); err == nil {
				if out, err := exec.Command(ruby, "-c", filepath.Join(cfg.OutDir, formulaName)).CombinedOutput(); err != nil {
					t.Errorf("ruby -c: %v: %s", err, out)
				}
			}
		})
	}
}

func TestSumsAndStaleArtifacts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vmbox-0.9-linux-amd64.tar.gz", "old")
	write("vmbox-0.9-windows-amd64.msi", "old")
	write(".vmbox-1.0-linux-amd64.tar.gz.tmp-123", "partial")
	write("README.txt", "the user's")
	write("vmbox-1.0-linux-amd64.tar.gz", "new tarball")
	write("vmbox.rb", "new formula")
	arts := []artifact{
		{Name: "vmbox.rb", SHA256: "bb"},
		{Name: "vmbox-1.0-linux-amd64.tar.gz", SHA256: "aa"},
	}
	sums, err := writeSums(dir, arts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, sumsName))
	if err != nil {
		t.Fatal(err)
	}
	if want := "aa  vmbox-1.0-linux-amd64.tar.gz\nbb  vmbox.rb\n"; string(b) != want {
		t.Errorf("SHA256SUMS = %q, want %q", b, want)
	}
	removed, err := removeStale(dir, append(arts, sums))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if want := []string{".vmbox-1.0-linux-amd64.tar.gz.tmp-123", "vmbox-0.9-linux-amd64.tar.gz", "vmbox-0.9-windows-amd64.msi"}; strings.Join(removed, " ") != strings.Join(want, " ") {
		t.Errorf("removed %q, want %q", removed, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	var names []string
	for _, l := range left {
		names = append(names, filepath.Base(l))
	}
	if want := "README.txt SHA256SUMS vmbox-1.0-linux-amd64.tar.gz vmbox.rb"; strings.Join(names, " ") != want {
		t.Errorf("left %q, want %s", names, want)
	}

	// The real thing: sha256sum checks the file (when it is installed).
	if _, err := exec.LookPath("sha256sum"); err == nil {
		write(sumsName, "")
		tarball := filepath.Join(dir, "vmbox-1.0-linux-amd64.tar.gz")
		if _, err := writeSums(dir, []artifact{{Name: filepath.Base(tarball), SHA256: sha256File(t, tarball)}}); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sha256sum", "-c", sumsName)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v: %s", err, out)
		}
	}
}

// TestScriptsLint checks the shell the packages run: the rendered
// install.sh (POSIX sh) and the macOS package recipe (bash), with the
// shells' own parsers and with shellcheck when it is installed.
func TestScriptsLint(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	var scripts [][2]string // path, shell
	for _, tg := range []target{{"linux", "amd64"}, {"darwin", "arm64"}} {
		img := &guestImage{Arch: tg.Arch, Manifest: vmimage.Manifest{KernelVersion: "6.1.0-test"}}
		b, err := render(cfg.Packaging, "install.sh.tmpl", newPackageData(cfg.Version, tg, img))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "install-"+tg.OS+"-"+tg.Arch+".sh")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, [2]string{p, "sh"})
	}
	scripts = append(scripts, [2]string{filepath.Join(cfg.Packaging, "macos", "build-pkg.sh"), "bash"})
	for _, s := range scripts {
		if out, err := exec.Command(s[1], "-n", s[0]).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v: %s", s[1], s[0], err, out)
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed: only the shells' syntax checks ran")
	}
	for _, s := range scripts {
		if out, err := exec.Command(sc, "--shell="+s[1], s[0]).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v:\n%s", s[0], err, out)
		}
	}
}

// TestInstallScriptRefusesOtherPlatforms runs an install.sh made for
// another CPU (or OS) than this machine's: it must stop before touching
// the prefix.
func TestInstallScriptRefusesOtherPlatforms(t *testing.T) {
	cfg := testConfig(t)
	other := target{"linux", "arm64"}
	if runtime.GOARCH == "arm64" {
		other = target{"linux", "amd64"}
	}
	if runtime.GOOS != "linux" {
		other = target{"linux", runtime.GOARCH}
	}
	img := &guestImage{Arch: other.Arch, Manifest: vmimage.Manifest{KernelVersion: "6.1.0-test"}}
	b, err := render(cfg.Packaging, "install.sh.tmpl", newPackageData(cfg.Version, other, img))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "install.sh")
	if err := os.WriteFile(script, b, 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "prefix")
	for _, args := range [][]string{{"--prefix", prefix}, {"--prefix"}, {"--bogus"}, {"--prefix="}} {
		out, err := exec.Command("sh", append([]string{script}, args...)...).CombinedOutput()
		if err == nil {
			t.Errorf("install.sh %q succeeded:\n%s", args, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); !strings.HasPrefix(lines[len(lines)-1], "install.sh: ") {
			t.Errorf("install.sh %q did not end with one clear error line:\n%s", args, out)
		}
	}
	out, _ := exec.Command("sh", script, "--prefix", prefix).CombinedOutput()
	if !strings.Contains(string(out), "this package is for "+other.String()) {
		t.Errorf("install.sh for %s on this machine said:\n%s", other, out)
	}
	if _, err := os.Stat(prefix); !os.IsNotExist(err) {
		t.Errorf("the refused install touched its prefix: %v", err)
	}
	help, err := exec.Command("sh", script, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "--uninstall") {
		t.Errorf("install.sh --help: %v\n%s", err, help)
	}
}

func TestBuildSkipsTargetsWithoutImage(t *testing.T) {
	t.Parallel()
	// A whole run over a bin/ and image root of our own: the amd64 image
	// exists, arm64's does not, so only amd64 artifacts appear and the
	// arm64 targets are reported.
	cfg := testConfig(t)
	lock, err := vmimage.ReadLock(cfg.LockPath)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := fakeImage(t, "amd64", lock, []byte("agent"))
	cfg.ImageRoot = filepath.Dir(dir)
	cfg.BinDir = t.TempDir()
	cfg.CheckAgent = true
	cfg.Targets = []target{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}
	// Only the targets with an image need their CLI.
	for _, tg := range []target{{"linux", "amd64"}, {"darwin", "amd64"}} {
		d := filepath.Join(cfg.BinDir, tg.OS+"_"+tg.Arch)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(cliFor(t, tg), filepath.Join(d, "vmbox")); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	cfg.Log = &log
	arts, err := build(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range arts {
		names = append(names, a.Name)
	}
	want := "vmbox-1.2.3-test-linux-amd64.tar.gz vmbox-1.2.3-test-darwin-amd64.tar.gz vmbox.rb SHA256SUMS"
	if strings.Join(names, " ") != want {
		t.Errorf("artifacts %q, want %s", names, want)
	}
	if !strings.Contains(log.String(), "skipped linux/arm64, darwin/arm64: no guest image") ||
		!strings.Contains(log.String(), "make image ARCH=arm64") {
		t.Errorf("the run did not say what it skipped and why:\n%s", log.String())
	}
	sums, err := os.ReadFile(filepath.Join(cfg.OutDir, sumsName))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arts[:len(arts)-1] {
		if sha := sha256File(t, filepath.Join(cfg.OutDir, a.Name)); !strings.Contains(string(sums), sha+"  "+a.Name+"\n") {
			t.Errorf("SHA256SUMS lacks %s %s:\n%s", sha, a.Name, sums)
		}
	}
	rb, err := os.ReadFile(filepath.Join(cfg.OutDir, formulaName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rb), sha256File(t, filepath.Join(cfg.OutDir, "vmbox-1.2.3-test-darwin-amd64.tar.gz"))) {
		t.Errorf("the formula does not carry the darwin tarball's sha256:\n%s", rb)
	}

	// The macOS package recipe lays the darwin tarball out as the .pkg
	// payload (the part of it that runs off a Mac).
	if _, err := exec.LookPath("bash"); err == nil {
		stage := filepath.Join(t.TempDir(), "payload")
		cmd := exec.Command("bash", filepath.Join(cfg.Packaging, "macos", "build-pkg.sh"),
			"--arch", "amd64", "--version", cfg.Version, "--prebuilt", "--stage", stage,
			"--tarball", filepath.Join(cfg.OutDir, "vmbox-1.2.3-test-darwin-amd64.tar.gz"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build-pkg.sh --stage: %v\n%s", err, out)
		}
		for dst, src := range map[string]string{
			"usr/local/bin/vmbox":                       filepath.Join(cfg.BinDir, "darwin_amd64", "vmbox"),
			"usr/local/share/vmbox/amd64/kernel":        filepath.Join(dir, "kernel"),
			"usr/local/share/vmbox/amd64/initrd.img":    filepath.Join(dir, "initrd.img"),
			"usr/local/share/vmbox/amd64/manifest.json": filepath.Join(dir, "manifest.json"),
		} {
			if sha256File(t, filepath.Join(stage, dst)) != sha256File(t, src) {
				t.Errorf("payload %s differs from %s", dst, src)
			}
		}
		if notice, err := os.ReadFile(filepath.Join(stage, "usr/local/share/doc/vmbox/NOTICE")); err != nil || !strings.Contains(string(notice), "darwin/amd64") {
			t.Errorf("payload NOTICE: %v\n%s", err, notice)
		}
		if st, err := os.Stat(filepath.Join(stage, "usr/local/bin/vmbox")); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("payload vmbox: %v", err)
		}
	}

	// A CLI missing for a target that has its image is an error, not a skip.
	if err := os.Remove(filepath.Join(cfg.BinDir, "darwin_amd64", "vmbox")); err != nil {
		t.Fatal(err)
	}
	if _, err := build(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "make cross") {
		t.Errorf("build without the darwin/amd64 CLI: %v, want an error naming make cross", err)
	}
	// An agent that is not the image's is refused.
	if err := os.WriteFile(filepath.Join(cfg.BinDir, "linux_amd64", "vmbox-agent"), []byte("another agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := build(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "holds another agent") {
		t.Errorf("build with a foreign agent: %v", err)
	}
}
