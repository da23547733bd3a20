// Package vmimage builds the vmbox guest's boot files — a kernel the
// hypervisor can boot directly and an initramfs whose /init is the vmbox
// agent — from Debian packages pinned by exact version and SHA-256 in a lock
// file (vmimage/debian.lock), so that the same inputs always give
// byte-identical outputs.
//
// It owns the lock (resolving current versions with apt-cache, see
// ResolveCurrent), fetching and verifying .debs (apt-get download into a
// cache), unpacking them in memory, turning Debian's compressed kernel into
// the bootable form (on amd64 the uncompressed vmlinux ELF with its Xen PVH
// entry note, compacted; on arm64 the uncompressed Image), and assembling
// the initramfs: busybox, mke2fs with its libraries, the CA bundle, the
// kernel modules the guest needs with a load order
// (/etc/vmbox/modules.txt), and a manifest (/etc/vmbox/image.json).
//
// Output directory layout: kernel, kernel.zst (the same kernel compressed
// for shipping), initrd.img (uncompressed newc cpio) and manifest.json.
//
// /etc/vmbox/modules.txt has one line per shipped module, in an order in
// which loading every line succeeds (dependencies first):
//
//	<name> <absolute path in the guest> <deps>
//
// where <deps> is every module <name> needs, transitively, comma-separated
// and in load order, or "-" when it needs none. Loading <deps> in order and
// then <name> therefore loads <name>; no recursion is required.
package vmimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Config is one image build.
type Config struct {
	Arch     string // amd64 or arm64
	Agent    string // static vmbox-agent binary for Arch; becomes /init
	OutDir   string // receives kernel, kernel.zst, initrd.img, manifest.json
	CacheDir string // downloaded .debs, reused when their hash matches
	LockPath string // the lock file
	// ZstdLevel is the zstd level of kernel.zst, 1-19; 0 means 19.
	ZstdLevel int
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

// Digest identifies a file.
type Digest struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func digestOf(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest{SHA256: hex.EncodeToString(s[:]), Size: int64(len(b))}
}

// ModuleReport says what happened to each wanted kernel module.
type ModuleReport struct {
	Shipped []string `json:"shipped"`           // in the initramfs, in load order (includes dependencies)
	Builtin []string `json:"builtin,omitempty"` // wanted, built into the kernel
	Absent  []string `json:"absent,omitempty"`  // wanted, not in this kernel
}

// Manifest records what went into an image. The copy inside the initramfs
// (/etc/vmbox/image.json) has no Outputs or Tools (it cannot contain its
// own hash); manifest.json beside the outputs has both.
type Manifest struct {
	Arch          string       `json:"arch"`
	KernelVersion string       `json:"kernel_version"`
	KernelFormat  string       `json:"kernel_format"` // "pvh-elf" (amd64) or "arm64-image"
	KernelHZ      int          `json:"kernel_hz"`     // CONFIG_HZ, to compute lpj= for the guest command line
	Packages      []Package    `json:"packages"`
	Agent         Digest       `json:"agent"`
	Modules       ModuleReport `json:"modules"`
	// Outputs are the files in the output directory, by name.
	Outputs map[string]Digest `json:"outputs,omitempty"`
	// Tools are external programs whose version shapes an output.
	Tools map[string]string `json:"tools,omitempty"`
}

// Output file names.
const (
	KernelFile    = "kernel"
	KernelZstFile = "kernel.zst"
	InitrdFile    = "initrd.img"
	ManifestFile  = "manifest.json"
)

// Build builds an image as cfg describes and returns its manifest.
func Build(ctx context.Context, cfg Config) (*Manifest, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	a, err := lookupArch(cfg.Arch)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"agent", cfg.Agent}, {"output directory", cfg.OutDir}, {"cache directory", cfg.CacheDir}, {"lock file", cfg.LockPath}} {
		if f.v == "" {
			return nil, fmt.Errorf("no %s given", f.name)
		}
	}
	level := cfg.ZstdLevel
	if level == 0 {
		level = 19
	}
	if level < 1 || level > 19 {
		return nil, fmt.Errorf("zstd level %d out of range 1-19", level)
	}
	agent, err := os.ReadFile(cfg.Agent)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := checkStaticExecutable(agent, a); err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.Agent, err)
	}
	lock, err := ReadLock(cfg.LockPath)
	if err != nil {
		return nil, errNoLock(cfg.LockPath, err)
	}
	pkgs, err := lock.ForArch(a.name)
	if err != nil {
		return nil, err
	}

	// Fetch and unpack every package; nothing is read before its hash is checked.
	fe := &fetcher{cacheDir: cfg.CacheDir, logf: logf}
	t := newTree()
	for _, p := range pkgs {
		deb, err := fe.fetch(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := checkControl(ctx, deb, p); err != nil {
			return nil, err
		}
		if err := t.addDeb(ctx, deb, p.Name); err != nil {
			return nil, err
		}
	}

	man := &Manifest{Arch: a.name, Packages: pkgs, Agent: digestOf(agent)}
	kver, vmlinuz, err := findKernel(t)
	if err != nil {
		return nil, err
	}
	man.KernelVersion = kver
	if man.KernelHZ, err = kernelHZ(t, kver); err != nil {
		return nil, err
	}
	logf("kernel %s: making the bootable form", kver)
	kernel, format, err := bootableKernel(a, vmlinuz)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", kver, err)
	}
	man.KernelFormat = format

	idx, err := indexModules(t, kver)
	if err != nil {
		return nil, err
	}
	mods, err := idx.resolve(wantedModules)
	if err != nil {
		return nil, err
	}
	for _, m := range mods.Ordered {
		man.Modules.Shipped = append(man.Modules.Shipped, m.name)
	}
	man.Modules.Builtin, man.Modules.Absent = mods.Builtin, mods.Absent

	imageJSON, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	root, err := assembleRootfs(t, a, agent, mods, append(imageJSON, '\n'))
	if err != nil {
		return nil, err
	}
	var initrd bytes.Buffer
	if err := root.write(&initrd); err != nil {
		return nil, err
	}

	logf("compressing kernel with zstd -%d", level)
	kzst, zver, err := zstdCompress(ctx, kernel, level)
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	man.Outputs = map[string]Digest{}
	man.Tools = map[string]string{"zstd": zver}
	for _, o := range []struct {
		name string
		data []byte
	}{{KernelFile, kernel}, {KernelZstFile, kzst}, {InitrdFile, initrd.Bytes()}} {
		if err := writeFileAtomic(filepath.Join(cfg.OutDir, o.name), o.data, 0o644); err != nil {
			return nil, err
		}
		man.Outputs[o.name] = digestOf(o.data)
	}
	mj, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(cfg.OutDir, ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return nil, err
	}
	return man, nil
}

// findKernel returns the version and contents of the one /boot/vmlinuz-*.
func findKernel(t *tree) (string, []byte, error) {
	var found []string
	for _, p := range t.list("/boot") {
		if strings.HasPrefix(p, "/boot/vmlinuz-") {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		return "", nil, fmt.Errorf("want exactly one /boot/vmlinuz-* in the kernel package, found %d", len(found))
	}
	data, err := t.file(found[0])
	if err != nil {
		return "", nil, err
	}
	return strings.TrimPrefix(found[0], "/boot/vmlinuz-"), data, nil
}

// kernelHZ reads CONFIG_HZ from the packaged kernel config.
func kernelHZ(t *tree, kver string) (int, error) {
	cfg, err := t.file("/boot/config-" + kver)
	if err != nil {
		return 0, fmt.Errorf("kernel config: %w", err)
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		if v, ok := strings.CutPrefix(line, "CONFIG_HZ="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("kernel config has no CONFIG_HZ")
}

// bootableKernel turns Debian's vmlinuz into what QEMU's -kernel (and vz)
// boot fastest: on amd64 the uncompressed, compacted PVH vmlinux; on arm64
// the uncompressed Image.
func bootableKernel(a archInfo, vmlinuz []byte) ([]byte, string, error) {
	switch a.name {
	case "amd64":
		payload, err := bzImagePayload(vmlinuz)
		if err != nil {
			return nil, "", err
		}
		vmlinux, err := decompressKernel(payload)
		if err != nil {
			return nil, "", err
		}
		if _, err := checkPVH(vmlinux); err != nil {
			return nil, "", err
		}
		compact, err := compactELF(vmlinux)
		if err != nil {
			return nil, "", err
		}
		if _, err := checkPVH(compact); err != nil {
			return nil, "", fmt.Errorf("after compaction: %w", err)
		}
		return compact, "pvh-elf", nil
	case "arm64":
		// Debian's signed arm64 vmlinuz is already the uncompressed Image
		// (an EFI-signed binary cannot be compressed); older or unsigned
		// flavours gzip it.
		img := vmlinuz
		if !isArm64Image(img) {
			var err error
			if img, err = decompressKernel(vmlinuz); err != nil {
				return nil, "", err
			}
		}
		if !isArm64Image(img) {
			return nil, "", errors.New("kernel is not an arm64 Image (no ARM\\x64 magic at offset 0x38)")
		}
		return img, "arm64-image", nil
	}
	return nil, "", fmt.Errorf("no kernel recipe for %s", a.name)
}

// isArm64Image reports whether b starts with an arm64 Image header.
func isArm64Image(b []byte) bool { return len(b) >= 64 && string(b[0x38:0x3c]) == "ARM\x64" }

// realTools are the programs the image ships for real, whose busybox
// applets would shadow them (busybox's mke2fs only makes ext2).
var realTools = map[string]bool{"mke2fs": true, "mkfs.ext2": true, "mkfs.ext3": true, "mkfs.ext4": true}

// assembleRootfs lays out the initramfs.
func assembleRootfs(t *tree, a archInfo, agent []byte, mods *moduleSet, imageJSON []byte) (rootfs, error) {
	r := rootfs{}
	for _, d := range []struct {
		path string
		perm uint32
	}{
		{"/bin", 0o755}, {"/sbin", 0o755}, {"/dev", 0o755}, {"/etc", 0o755}, {"/etc/vmbox", 0o755},
		{"/proc", 0o555}, {"/sys", 0o555}, {"/run", 0o755}, {"/tmp", 0o1777},
		{"/root", 0o700}, {"/mnt", 0o755}, {"/var", 0o755}, {"/var/lib", 0o755}, {"/var/lib/vmbox", 0o755},
	} {
		if err := r.dir(d.path, d.perm); err != nil {
			return nil, err
		}
	}
	// The kernel opens /dev/console for /init's stdio before anything can
	// mount devtmpfs, so the node must be in the archive.
	if err := r.add("/dev/console", &fsEntry{typ: fsCharDev, perm: 0o600, major: 5, minor: 1}); err != nil {
		return nil, err
	}
	if err := r.file("/init", 0o755, agent); err != nil {
		return nil, err
	}

	bb, err := t.file("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static: %w", err)
	}
	if err := checkStaticExecutable(bb, a); err != nil {
		return nil, fmt.Errorf("/bin/busybox: %w", err)
	}
	if err := r.file("/bin/busybox", 0o755, bb); err != nil {
		return nil, err
	}
	applets, err := busyboxApplets(bb)
	if err != nil {
		return nil, err
	}
	for _, ap := range applets {
		if ap == "busybox" || realTools[ap] {
			continue
		}
		if err := r.symlink("/bin/"+ap, "busybox"); err != nil {
			return nil, err
		}
	}

	files, err := sharedClosure(t, a, "/sbin/mke2fs")
	if err != nil {
		return nil, fmt.Errorf("mke2fs: %w", err)
	}
	files = append(files, "/sbin/mkfs.ext4", "/etc/mke2fs.conf")
	for _, p := range files {
		if err := r.fromTree(t, p); err != nil {
			return nil, err
		}
	}

	ca, err := caBundle(t)
	if err != nil {
		return nil, err
	}
	if err := r.file("/etc/ssl/certs/ca-certificates.crt", 0o644, ca); err != nil {
		return nil, err
	}

	for _, m := range mods.Ordered {
		if err := r.fromTree(t, m.path); err != nil {
			return nil, err
		}
	}
	if err := r.file("/etc/vmbox/modules.txt", 0o644, mods.modulesTxt()); err != nil {
		return nil, err
	}
	if err := r.file("/etc/vmbox/image.json", 0o644, imageJSON); err != nil {
		return nil, err
	}
	return r, nil
}

// zstdCompress compresses data with the zstd program, single-threaded so
// the output does not depend on the machine, and returns its version.
func zstdCompress(ctx context.Context, data []byte, level int) ([]byte, string, error) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		return nil, "", errors.New("zstd program not found (apt-get install zstd): it compresses kernel.zst")
	}
	ver, err := exec.CommandContext(ctx, bin, "-q", "-V").Output()
	if err != nil {
		return nil, "", fmt.Errorf("zstd -V: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-q", "-c", "-T1", "--no-progress", fmt.Sprintf("-%d", level))
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("zstd: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, strings.TrimSpace(string(ver)), nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// UpdateLock rewrites the lock at path with the archive's current versions
// for arches, keeping other architectures' entries. A missing lock file is
// created. It returns a summary of what changed.
func UpdateLock(ctx context.Context, path string, arches []string) ([]string, error) {
	lock, err := ReadLock(path)
	if errors.Is(err, os.ErrNotExist) {
		lock, err = &Lock{}, nil
	}
	if err != nil {
		return nil, err
	}
	old := map[string]Package{}
	for _, p := range lock.Packages {
		old[p.Arch+"/"+p.Name] = p
	}
	var changes []string
	for _, arch := range arches {
		pkgs, err := ResolveCurrent(ctx, arch)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, p := range pkgs {
			seen[p.Name] = true
			switch o, ok := old[arch+"/"+p.Name]; {
			case !ok:
				changes = append(changes, fmt.Sprintf("%s %s: added %s", arch, p.Name, p.Version))
			case o.Version != p.Version || o.SHA256 != p.SHA256:
				changes = append(changes, fmt.Sprintf("%s %s: %s -> %s", arch, p.Name, o.Version, p.Version))
			}
		}
		for _, o := range lock.Packages {
			if o.Arch == arch && !seen[o.Name] {
				changes = append(changes, fmt.Sprintf("%s %s: removed %s", arch, o.Name, o.Version))
			}
		}
		lock.Replace(arch, pkgs)
	}
	sort.Strings(changes)
	if err := WriteLock(path, lock); err != nil {
		return nil, err
	}
	return changes, nil
}
