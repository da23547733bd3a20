// Package imagetest owns the fixtures that image, engine and end-to-end
// tests share: a throwaway local registry (Debian's docker-registry), small
// real images built from Debian's busybox-static and from a static Go
// program, pushing them, writing them as docker-save or OCI archives, and a
// plain busybox root filesystem for runtime tests. Helpers take testing.TB
// so benchmarks and test binaries can use them too; they fail the test on
// error and skip it only when a required tool is not installed.
package imagetest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/bcrypt"
)

const (
	// BusyboxOutput is what BusyboxImage's default command prints.
	BusyboxOutput = "hello from busybox"
	// HelloOutput is the first line HelloImage's entrypoint prints; its
	// arguments follow on the next line, space-separated, if there are any.
	HelloOutput = "Hello from vmbox!"
	// RegistryPath is where Debian installs the registry.
	RegistryPath = "/usr/bin/docker-registry"
	// BusyboxPath is where Debian's busybox-static installs busybox.
	BusyboxPath = "/bin/busybox"
	// DefaultPath is the PATH the images set.
	DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// created is the fixed creation time of the images built here, so that the
// same inputs always give the same image ID.
var created = v1.Time{Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}

// StartRegistry runs docker-registry on 127.0.0.1 with a temporary storage
// root, deletes enabled and no auth, waits until /v2/ answers and stops it
// when the test ends. It returns "127.0.0.1:PORT". The test is skipped if
// docker-registry is not installed.
func StartRegistry(tb testing.TB) string {
	tb.Helper()
	return NewRegistry(tb, RegistryOptions{}).Addr
}

// RegistryOptions configure NewRegistry.
type RegistryOptions struct {
	// User and Password, when set, turn on htpasswd (basic) auth.
	User, Password string
}

// Registry is a running docker-registry.
type Registry struct {
	Addr    string // "127.0.0.1:PORT"
	Storage string // its filesystem storage root, for tests that corrupt it
	opts    RegistryOptions
}

// NewRegistry is StartRegistry with options, returning more details.
func NewRegistry(tb testing.TB, opts RegistryOptions) *Registry {
	tb.Helper()
	bin := RegistryPath
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("docker-registry")
		if lerr != nil {
			tb.Skipf("docker-registry is not installed (%s missing; apt install docker-registry)", RegistryPath)
		}
		bin = p
	}
	dir := tb.TempDir()
	var auth string
	if opts.User != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		hp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(hp, []byte(opts.User+":"+string(h)+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: vmbox-test\n    path: %s\n", hp)
	}
	var lastErr error
	// A port picked by listening on :0 can be taken by someone else before
	// the registry binds it; try a few.
	for i := range 3 {
		addr, err := freePort()
		if err != nil {
			tb.Fatalf("start registry: %v", err)
		}
		storage := filepath.Join(dir, fmt.Sprintf("storage%d", i))
		if err := startRegistry(tb, bin, dir, storage, addr, auth); err == nil {
			return &Registry{Addr: addr, Storage: storage, opts: opts}
		} else {
			lastErr = err
		}
	}
	tb.Fatalf("start registry: %v", lastErr)
	return nil
}

// Push uploads img to repoTag ("busybox:latest") in this registry, with
// its credentials if it has any, and returns the manifest digest.
func (r *Registry) Push(tb testing.TB, img v1.Image, repoTag string) string {
	tb.Helper()
	auth := authn.Anonymous
	if r.opts.User != "" {
		auth = &authn.Basic{Username: r.opts.User, Password: r.opts.Password}
	}
	return push(tb, img, r.Addr+"/"+repoTag, auth)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startRegistry(tb testing.TB, bin, dir, storage, addr, auth string) error {
	if err := os.MkdirAll(storage, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, storage, addr, auth)
	cfgPath := storage + ".yml"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	logPath := storage + ".log"
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a ^C to the test does not race the
	// cleanup. No Pdeathsig: it fires when the forking OS thread exits,
	// which Go does to threads locked by namespace-switching tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401 is the answer of a registry with auth.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				tb.Cleanup(stop)
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("docker-registry exited (%v): %s", err, lastLines(string(log), 5))
		case <-ctx.Done():
			stop()
			return fmt.Errorf("docker-registry did not answer on %s", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Entry is one file of a layer built by Layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg (default), tar.TypeDir, tar.TypeSymlink, tar.TypeLink...
	Mode     int64
	Body     []byte
	Linkname string
	Uid, Gid int
}

// TarBytes renders entries as an uncompressed tar with fixed times.
func TarBytes(tb testing.TB, entries []Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname, Uid: e.Uid, Gid: e.Gid, ModTime: created.Time, Format: tar.FormatPAX}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("tar %s: %v", e.Name, err)
		}
		if _, err := tw.Write(e.Body); err != nil {
			tb.Fatalf("tar %s: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Layer builds a gzip-compressed layer from entries.
func Layer(tb testing.TB, entries []Entry) v1.Layer {
	tb.Helper()
	b := TarBytes(tb, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// NewImage builds a linux/<GOARCH> image from layers (lowest first) and a
// runtime config.
func NewImage(tb testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config = cfg
	for i := range cf.History {
		cf.History[i].Created = created
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// WithPlatform returns img with its config's os/arch[/variant] set.
func WithPlatform(tb testing.TB, img v1.Image, platform string) v1.Image {
	tb.Helper()
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BusyboxEntries is the busybox root filesystem: /bin/busybox with a
// symlink in /bin for every applet (from `busybox --list`), /etc/passwd and
// /etc/group with root and nobody, and empty /dev, /proc, /sys, /tmp, /root.
func BusyboxEntries(tb testing.TB) []Entry {
	tb.Helper()
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		tb.Skipf("busybox-static is not installed (%s: %v)", BusyboxPath, err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		tb.Fatalf("busybox --list: %v", err)
	}
	entries := []Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: bin},
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		entries = append(entries, Entry{Name: "bin/" + a, Type: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	entries = append(entries,
		Entry{Name: "dev/", Type: tar.TypeDir},
		Entry{Name: "etc/", Type: tar.TypeDir},
		Entry{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		Entry{Name: "etc/group", Body: []byte("root:x:0:\nnobody:x:65534:\n")},
		Entry{Name: "proc/", Type: tar.TypeDir, Mode: 0o555},
		Entry{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		Entry{Name: "sys/", Type: tar.TypeDir, Mode: 0o555},
		Entry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		Entry{Name: "usr/", Type: tar.TypeDir},
		Entry{Name: "usr/bin/", Type: tar.TypeDir},
		Entry{Name: "usr/bin/env", Type: tar.TypeSymlink, Linkname: "../../bin/busybox", Mode: 0o777},
	)
	return entries
}

// BusyboxImage is a one-layer busybox image whose default command prints
// BusyboxOutput.
func BusyboxImage(tb testing.TB) v1.Image {
	tb.Helper()
	return NewImage(tb, v1.Config{
		Env: []string{DefaultPath},
		Cmd: []string{"sh", "-c", "echo " + BusyboxOutput},
	}, Layer(tb, BusyboxEntries(tb)))
}

// BusyboxRootfs writes the busybox root filesystem into dir (created if
// needed), for runtime tests that want a rootfs without an image store.
func BusyboxRootfs(tb testing.TB, dir string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, e := range BusyboxEntries(tb) {
		p := filepath.Join(dir, filepath.FromSlash(path.Clean(e.Name)))
		var err error
		switch e.Type {
		case tar.TypeDir:
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = os.Chmod(p, fs.FileMode(e.Mode&0o777)|modeExtra(e.Mode))
			}
		case tar.TypeSymlink:
			err = os.Symlink(e.Linkname, p)
		default:
			if err = os.WriteFile(p, e.Body, 0o644); err == nil {
				err = os.Chmod(p, fs.FileMode(e.Mode&0o777))
			}
		}
		if err != nil {
			tb.Fatalf("busybox rootfs: %v", err)
		}
	}
}

func modeExtra(m int64) fs.FileMode {
	var x fs.FileMode
	if m&0o1000 != 0 {
		x |= fs.ModeSticky
	}
	return x
}

// HelloImage is an image holding one static binary, /hello, its
// entrypoint. It prints HelloOutput, then its arguments if any. The binary
// is built from Go source with CGO_ENABLED=0 by the Go toolchain running the
// test.
func HelloImage(tb testing.TB) v1.Image {
	tb.Helper()
	bin := BuildHello(tb)
	b, err := os.ReadFile(bin)
	if err != nil {
		tb.Fatal(err)
	}
	return NewImage(tb, v1.Config{
		Env:        []string{DefaultPath},
		Entrypoint: []string{"/hello"},
	}, Layer(tb, []Entry{{Name: "hello", Mode: 0o755, Body: b}}))
}

const helloSource = `package main

import (
	"os"
	"strings"
)

func main() {
	os.Stdout.WriteString(%q + "\n")
	if len(os.Args) > 1 {
		os.Stdout.WriteString(strings.Join(os.Args[1:], " ") + "\n")
	}
}
`

// BuildHello builds the hello program and returns the binary's path.
func BuildHello(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			tb.Skip("the Go toolchain is not available to build the hello image")
		}
	}
	dir := tb.TempDir()
	src := fmt.Sprintf(helloSource, HelloOutput)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build hello: %v: %s", err, b)
	}
	return out
}

// Push uploads img to ref (e.g. addr+"/busybox:latest") over plain HTTP and
// returns the manifest digest.
func Push(tb testing.TB, img v1.Image, ref string) string {
	tb.Helper()
	return push(tb, img, ref, authn.Anonymous)
}

func push(tb testing.TB, img v1.Image, ref string, auth authn.Authenticator) string {
	tb.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d.String()
}

// Index builds a multi-platform index from platform ("linux/arm64") to
// image; each image's config is given that platform.
func Index(tb testing.TB, byPlatform map[string]v1.Image) v1.ImageIndex {
	tb.Helper()
	keys := make([]string, 0, len(byPlatform))
	for k := range byPlatform {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var idx v1.ImageIndex = empty.Index
	for _, k := range keys {
		p, err := v1.ParsePlatform(k)
		if err != nil {
			tb.Fatal(err)
		}
		img := WithPlatform(tb, byPlatform[k], k)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx
}

// PushIndex uploads an index and its images to ref and returns its digest.
func PushIndex(tb testing.TB, idx v1.ImageIndex, ref string) string {
	tb.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	return d.String()
}

// WriteDockerArchive writes a docker-save archive (manifest.json format,
// gzip-compressed layers as go-containerregistry writes them) of the images,
// keyed by reference ("busybox:latest").
func WriteDockerArchive(tb testing.TB, w io.Writer, byRef map[string]v1.Image) {
	tb.Helper()
	m := map[name.Reference]v1.Image{}
	for ref, img := range byRef {
		r, err := name.ParseReference(ref)
		if err != nil {
			tb.Fatal(err)
		}
		m[r] = img
	}
	bw := bufio.NewWriter(w)
	if err := tarball.MultiRefWrite(m, bw); err != nil {
		tb.Fatalf("write docker archive: %v", err)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// WriteOCIArchive writes an OCI image layout as a tar, one index entry per
// reference with the reference in org.opencontainers.image.ref.name.
func WriteOCIArchive(tb testing.TB, w io.Writer, byRef map[string]v1.Image) {
	tb.Helper()
	dir := tb.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		tb.Fatal(err)
	}
	refs := make([]string, 0, len(byRef))
	for r := range byRef {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		if err := lp.AppendImage(byRef[r], layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": r})); err != nil {
			tb.Fatalf("write OCI layout: %v", err)
		}
	}
	if err := TarDir(w, dir); err != nil {
		tb.Fatalf("write OCI archive: %v", err)
	}
}

// TarDir writes the tree under dir to w as a tar with relative names.
func TarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
