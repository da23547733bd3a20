package qemu

// Helpers that give the integration tests and benchmarks a bootable
// guest: the real image when it has been built, else a test guest made of a
// Debian cloud kernel and a tiny initramfs whose /init is testdata/guestinit.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/internal/cpio"
)

// EnvImageDir overrides where the tests look for the built amd64 guest
// image; the arm64 one is looked for beside it.
const EnvImageDir = "VMBOX_IMAGE_DIR"

// envTestCache overrides where the tests keep the Debian kernels they fetch.
const envTestCache = "VMBOX_TEST_CACHE"

// testGuest is a bootable guest.
type testGuest struct {
	arch    string
	kernel  string
	initrds []string
	real    bool // the real image, agent and all (no guestinit)
	desc    string
	// client is the key the real image's agent admits.
	client ssh.Signer
}

// guestModules are the modules guestinit loads, by file name, when the
// kernel comes from a Debian package rather than the real image: virtio
// over MMIO (x86 microvm) or PCI (arm64 virt), network (the agent's
// channel), block and RNG.
var guestModules = []string{
	"virtio_ring.ko", "virtio.ko", "virtio_mmio.ko",
	"virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko", "virtio_pci.ko",
	"failover.ko", "net_failover.ko", "virtio_net.ko", "virtio_blk.ko", "virtio-rng.ko",
}

// guestBuilds holds what is built once per test binary: guestinit and its
// archives, per architecture.
var guestBuilds struct {
	sync.Mutex
	tmp   string
	owned bool // tmp is this process's to remove
	done  map[string]error
}

// envGuestTmp hands a helper process (TestQEMUDiesWithOwner) the parent's
// directory of built guest files, which the parent removes.
const envGuestTmp = "VMBOX_QEMU_TEST_GUEST_TMP"

// guestTmp returns the per-test-binary directory for built guest files.
func guestTmp(t testing.TB) string {
	guestBuilds.Lock()
	defer guestBuilds.Unlock()
	if guestBuilds.tmp == "" {
		d := os.Getenv(envGuestTmp)
		if d == "" {
			var err error
			if d, err = os.MkdirTemp("", "vmbox-qemu-test-"); err != nil {
				t.Fatal(err)
			}
			guestBuilds.owned = true
		}
		guestBuilds.tmp = d
		guestBuilds.done = map[string]error{}
	}
	return guestBuilds.tmp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestBuilds.owned {
		os.RemoveAll(guestBuilds.tmp)
	}
	os.Exit(code)
}

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// imageDir is where the vmimage build puts the guest of arch.
func imageDir(t testing.TB, arch string) string {
	amd64 := os.Getenv(EnvImageDir)
	if amd64 == "" {
		amd64 = filepath.Join(repoRoot(t), "build", "image", "amd64")
	}
	if arch == "amd64" {
		return amd64
	}
	return filepath.Join(filepath.Dir(amd64), arch)
}

func haveImage(t testing.TB, arch string) bool {
	dir := imageDir(t, arch)
	return fileExists(filepath.Join(dir, "kernel")) && fileExists(filepath.Join(dir, "initrd.img"))
}

// realImage returns the built amd64 guest image with a per-instance
// archive for a guest of cpus CPUs, or skips.
func realImage(t testing.TB, cpus int) testGuest {
	t.Helper()
	needQEMU(t, "amd64")
	dir := imageDir(t, "amd64")
	k, i := filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd.img")
	for _, p := range []string{k, i} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("real guest image not built: %v (build it into build/image/amd64 or set %s)", err, EnvImageDir)
		}
	}
	inst := filepath.Join(t.TempDir(), "instance.cpio")
	client, err := writeInstanceInitrd(inst, cpus)
	if err != nil {
		t.Fatal(err)
	}
	return testGuest{arch: "amd64", kernel: k, initrds: []string{i, inst}, real: true, desc: "real image " + dir, client: client}
}

// echoGuest returns a guest of arch whose /init is guestinit: on the real
// image's kernel and modules when the image is built (guestinit's archive
// comes last and replaces /init), else on a Debian cloud kernel fetched
// with apt-get once and cached. It skips when neither can be had.
func echoGuest(t testing.TB, arch string) testGuest {
	t.Helper()
	needQEMU(t, arch)
	tmp := guestTmp(t)
	initCpio := filepath.Join(tmp, "guestinit-"+arch+".cpio")
	modCpio := filepath.Join(tmp, "modules-"+arch+".cpio")
	dir := imageDir(t, arch)
	if haveImage(t, arch) {
		buildGuest(t, arch, initCpio, "", "")
		return testGuest{arch: arch, kernel: filepath.Join(dir, "kernel"),
			initrds: []string{filepath.Join(dir, "initrd.img"), initCpio},
			desc:    "guestinit on the real image's kernel in " + dir}
	}
	kdir, err := debianKernel(arch)
	if err != nil {
		t.Skipf("no %s guest kernel: the image is not built (%s) and a Debian cloud kernel could not be fetched: %v", arch, dir, err)
	}
	// Modules and /init in two archives, so that the boot also proves the
	// kernel takes the driver's concatenation of Spec.Initrds.
	buildGuest(t, arch, initCpio, modCpio, kdir)
	kernel := filepath.Join(kdir, "vmlinux")
	if !fileExists(kernel) {
		kernel = filepath.Join(kdir, "vmlinuz")
	}
	return testGuest{arch: arch, kernel: kernel, initrds: []string{modCpio, initCpio}, desc: "guestinit on Debian kernel " + kernel}
}

func needQEMU(t testing.TB, arch string) {
	t.Helper()
	if err := New(Options{Arch: arch}).Available(); err != nil {
		t.Skipf("QEMU is not installed: %v", err)
	}
}

// buildGuest compiles testdata/guestinit for arch into an archive at
// initCpio and, when kdir is set, writes the modules from kdir into an
// archive at modCpio, once per test binary and architecture.
func buildGuest(t testing.TB, arch, initCpio, modCpio, kdir string) {
	t.Helper()
	guestBuilds.Lock()
	defer guestBuilds.Unlock()
	key := arch + "|" + kdir
	err, done := guestBuilds.done[key]
	if !done {
		err = func() error {
			bin := filepath.Join(guestBuilds.tmp, "init-"+arch)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./testdata/guestinit")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("build guestinit: %v\n%s", err, out)
			}
			if err := writeInitramfs(initCpio, bin, nil); err != nil {
				return err
			}
			if kdir == "" {
				return nil
			}
			mods := map[string]string{}
			for _, m := range guestModules {
				if p := filepath.Join(kdir, m); fileExists(p) {
					mods["lib/modules/"+m] = p
				}
			}
			return writeInitramfs(modCpio, "", mods)
		}()
		guestBuilds.done[key] = err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// debianKernel returns a directory holding Debian's cloud kernel for arch
// (vmlinuz, and for amd64 the PVH vmlinux when the lz4 tool is there) and
// those of guestModules it has, fetching the package with apt-get download
// into the cache the first time.
func debianKernel(arch string) (string, error) {
	cache := os.Getenv(envTestCache)
	if cache == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(c, "vmbox-test")
	}
	// The name changes whenever guestModules does: a cache made for an
	// older list lacks modules (net: virtio_net, the agent's channel).
	dir := filepath.Join(cache, "kernel-cloud-net-"+arch)
	if fileExists(filepath.Join(dir, "vmlinuz")) {
		return dir, nil
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("%s not available", tool)
		}
	}
	meta := "linux-image-cloud-" + arch + ":" + arch
	out, err := exec.Command("apt-cache", "depends", meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %v (for a foreign architecture: dpkg --add-architecture %s; apt-get update)", meta, err, arch)
	}
	pkg := ""
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return "", fmt.Errorf("apt-cache does not know %s (run apt-get update?)", meta)
	}
	if !strings.Contains(pkg, ":") {
		pkg += ":" + arch
	}
	work, err := os.MkdirTemp("", "vmbox-kernel-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	dl := exec.Command("apt-get", "download", pkg)
	dl.Dir = work
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v: %s", pkg, err, lastLine(out))
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d packages", pkg, len(debs))
	}
	root := filepath.Join(work, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x: %v: %s", err, lastLine(out))
	}
	stage := filepath.Join(work, "stage")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return "", err
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", fmt.Errorf("%s has %d kernels", pkg, len(kernels))
	}
	copies := map[string]string{kernels[0]: filepath.Join(stage, "vmlinuz")}
	wanted := map[string]bool{}
	for _, m := range guestModules {
		wanted[m] = true
	}
	filepath.WalkDir(filepath.Join(root, "lib", "modules"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && wanted[d.Name()] {
			copies[p] = filepath.Join(stage, d.Name())
		}
		return nil
	})
	for src, dst := range copies {
		if err := copyPath(src, dst); err != nil {
			return "", err
		}
	}
	if arch == "amd64" {
		// The PVH vmlinux boots without firmware or decompression, as the
		// real image's kernel does; without the lz4 tool the bzImage boots.
		if err := extractVmlinux(filepath.Join(stage, "vmlinuz"), filepath.Join(stage, "vmlinux")); err != nil {
			os.Remove(filepath.Join(stage, "vmlinux"))
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(stage, dir); err != nil && !fileExists(filepath.Join(dir, "vmlinuz")) {
		return "", err
	}
	return dir, nil
}

// extractVmlinux decompresses the LZ4 payload of a bzImage (Debian's cloud
// kernels use LZ4) with the lz4 tool.
func extractVmlinux(bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	if len(b) < 0x250 || string(b[0x202:0x206]) != "HdrS" {
		return errors.New("not a bzImage")
	}
	setup := int(b[0x1f1])
	if setup == 0 {
		setup = 4
	}
	start := (setup + 1) * 512
	off := int(binary.LittleEndian.Uint32(b[0x248:]))
	n := int(binary.LittleEndian.Uint32(b[0x24c:]))
	if start+off+n > len(b) {
		return errors.New("bad payload bounds")
	}
	payload := b[start+off : start+off+n]
	if !bytes.HasPrefix(payload, []byte{0x02, 0x21, 0x4c, 0x18}) {
		return errors.New("payload is not LZ4")
	}
	cmd := exec.Command("lz4", "-dc")
	cmd.Stdin = bytes.NewReader(payload)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	cmd.Stdout = f
	// lz4 complains about the padding after the frames, with a good output.
	cmd.Run()
	if err := f.Close(); err != nil {
		return err
	}
	h := make([]byte, 4)
	if g, err := os.Open(out); err == nil {
		io.ReadFull(g, h)
		g.Close()
	}
	if string(h) != "\x7fELF" {
		return errors.New("lz4 produced no ELF")
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func copyPath(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeInitramfs writes a newc cpio archive holding /init (initPath, if
// not ""), /dev/console, and files (archive path -> host path).
func writeInitramfs(path, initPath string, files map[string]string) error {
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, d := range []string{"dev", "proc", "sys", "lib", "lib/modules"} {
		if err := w.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if initPath != "" {
		b, err := os.ReadFile(initPath)
		if err != nil {
			return err
		}
		if err := w.File("init", 0o755, b); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(files[n])
		if err != nil {
			return err
		}
		if err := w.File(n, 0o644, b); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeInstanceInitrd writes the per-instance archive the real agent needs
// (vmconfig.Config with fresh keys), as the host process does, and returns
// the client key the agent admits.
func writeInstanceInitrd(path string, cpus int) (ssh.Signer, error) {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostPEM, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		return nil, err
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return nil, err
	}
	cfg := vmconfig.Config{
		Version:          vmconfig.Version,
		Name:             "test",
		AuthorizedKey:    strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
		HostKey:          string(pem.EncodeToMemory(hostPEM)),
		BootTimeUnixNano: time.Now().UnixNano(),
		Network:          New(Options{}).GuestNetwork(),
		Agent:            New(Options{}).GuestAgent(),
		Modules:          New(Options{}).GuestModules("amd64"),
		LateModules:      New(Options{}).GuestLateModules("amd64"),
		CPUs:             cpus,
	}
	b, err := hostproc.InstanceInitrd(cfg)
	if err != nil {
		return nil, err
	}
	client, err := ssh.NewSignerFromKey(clientPriv)
	if err != nil {
		return nil, err
	}
	return client, os.WriteFile(path, b, 0o600)
}
