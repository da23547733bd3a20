package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/image/imagetest"
)

// buildCases: vmbox build of a multi-stage Dockerfile (.dockerignore,
// build args, a target, the config instructions), a failing RUN, the same
// builder through docker build and docker-compose build, and a C program
// compiled with Debian's tcc and run from a busybox stage.
func buildCases(t *testing.T, tg *target) {
	img := tg.reg + "/busybox"
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "msg.txt"), []byte("from the context\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 8<<20), 0o644)
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("big.bin\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(fmt.Sprintf(`ARG BASE=%s
FROM $BASE AS builder
ARG GREETING=hi
WORKDIR /work
COPY . .
RUN test ! -e big.bin && test ! -e .vmbox-dockerfile && echo "$GREETING $(cat src/msg.txt)" > out.txt
FROM %s AS final
ENV APP=demo
COPY --from=builder /work/out.txt /app/out.txt
USER 1000
WORKDIR /app
ENTRYPOINT ["cat"]
CMD ["out.txt"]
`, img, img)), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.fail"), []byte("FROM "+img+"\nRUN echo before; exit 7\n"), 0o644)
	t.Run("vmbox build", func(t *testing.T) {
		r := tg.run("build", "-t", "e2e/built:v1", "--build-arg", "GREETING=howdy", dir)
		if r.code != 0 || !strings.Contains(r.stdout, "Step 6/13 : RUN") || !strings.Contains(r.stdout, "Successfully tagged e2e/built:v1") {
			t.Fatalf("build: %s", r)
		}
		if r := tg.run("run", "--rm", "e2e/built:v1"); r.stdout != "howdy from the context\n" {
			t.Errorf("run: %s", r)
		}
		var insp []struct {
			Config struct {
				User, WorkingDir string
				Entrypoint, Cmd  []string
				Env              []string
			}
		}
		r = tg.run("inspect", "e2e/built:v1")
		if err := json.Unmarshal([]byte(r.stdout), &insp); err != nil || len(insp) != 1 {
			t.Fatalf("inspect: %v %s", err, r)
		}
		c := insp[0].Config
		if c.User != "1000" || c.WorkingDir != "/app" || strings.Join(c.Entrypoint, " ") != "cat" || strings.Join(c.Cmd, " ") != "out.txt" || !strings.Contains(strings.Join(c.Env, " "), "APP=demo") {
			t.Errorf("built config: %+v", c)
		}
		if r := tg.run("build", "-q", "--target", "builder", dir); r.code != 0 || !strings.HasPrefix(r.stdout, "sha256:") {
			t.Errorf("build --target -q: %s", r)
		}
	})
	t.Run("the build cache", func(t *testing.T) {
		id := func(r result) string {
			i := strings.Index(r.stdout, "Successfully built ")
			if i < 0 {
				t.Fatalf("no image built: %s", r)
			}
			return strings.Fields(r.stdout[i+len("Successfully built "):])[0]
		}
		first := tg.run("build", "-t", "e2e/built:v1", "--build-arg", "GREETING=howdy", dir)
		again := tg.run("build", "-t", "e2e/built:v1", "--build-arg", "GREETING=howdy", dir)
		if strings.Count(again.stdout, "Using cache") != 9 || strings.Contains(again.stdout, "Running in") || id(again) != id(first) {
			t.Errorf("a rebuild with nothing changed is not all cached:\n%s", again.stdout)
		}
		// A changed source reruns its COPY and what follows in that stage.
		os.WriteFile(filepath.Join(dir, "src", "msg.txt"), []byte("changed\n"), 0o644)
		defer os.WriteFile(filepath.Join(dir, "src", "msg.txt"), []byte("from the context\n"), 0o644)
		changed := tg.run("build", "-t", "e2e/built:v1", "--build-arg", "GREETING=howdy", dir)
		before, after, _ := strings.Cut(changed.stdout, "Step 5/13 : COPY . .")
		if strings.Count(before, "Using cache") != 1 || strings.Count(after, "Running in") != 1 || id(changed) == id(first) {
			t.Errorf("a changed source: %s", changed)
		}
		if r := tg.run("run", "--rm", "e2e/built:v1"); r.stdout != "howdy changed\n" {
			t.Errorf("run after the change: %s", r)
		}
		if r := tg.run("builder", "prune"); r.code != 0 || !strings.Contains(r.stdout, "Total reclaimed space") {
			t.Errorf("builder prune: %s", r)
		}
		if r := tg.run("build", "--build-arg", "GREETING=howdy", dir); strings.Contains(r.stdout, "Using cache") {
			t.Errorf("the cache is still there after prune: %s", r)
		}
	})
	t.Run("a failing RUN exits 1 and tags nothing", func(t *testing.T) {
		r := tg.run("build", "-f", filepath.Join(dir, "Dockerfile.fail"), "-t", "e2e/fails:v1", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "returned a non-zero code: 7") {
			t.Errorf("failing build: %s", r)
		}
		if r := tg.run("inspect", "e2e/fails:v1"); r.code == 0 {
			t.Error("the failed build tagged its image")
		}
	})
	t.Run("a context larger than the VM's disk fails with one line", func(t *testing.T) {
		big := t.TempDir()
		os.WriteFile(filepath.Join(big, "Dockerfile"), []byte("FROM "+img+"\nCOPY . /\n"), 0o644)
		f, err := os.Create(filepath.Join(big, "huge.img"))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(64 << 30) // sparse: nothing is written here
		f.Close()
		r := tg.run("build", big)
		if r.code != 1 || !strings.Contains(r.stderr, "larger than the VM's free disk space") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("huge context: %s", r)
		}
	})
	t.Run("docker build and docker-compose build through the API", func(t *testing.T) {
		host := dockerHost(t, tg.e)
		cfg := t.TempDir()
		d := dockerClient{t: t, bin: dockerCLIs["cli28"], host: host, cfg: cfg}
		t.Setenv("DOCKER_BUILDKIT", "0")
		if r := d.run("", "build", "-t", "e2e/api-built:v1", "--build-arg", "GREETING=api", dir); r.code != 0 || !strings.Contains(r.stdout, "Successfully tagged e2e/api-built:v1") {
			t.Fatalf("docker build: %s", r)
		}
		if r := d.must("run", "--rm", "e2e/api-built:v1"); r.stdout != "api from the context\n" {
			t.Errorf("docker run of the built image: %s", r)
		}
		os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte("version: \"2.4\"\nservices:\n  app:\n    build:\n      context: .\n      args:\n        GREETING: compose\n    image: e2e/compose-built:v1\n"), 0o644)
		cd := dockerClient{t: t, bin: "/usr/bin/docker-compose", host: host, cfg: cfg}
		if r := cd.run("", "-p", "e2ebuild", "--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml"), "build"); r.code != 0 {
			t.Fatalf("docker-compose build: %s", r)
		}
		if r := d.must("run", "--rm", "e2e/compose-built:v1"); r.stdout != "compose from the context\n" {
			t.Errorf("run of the compose-built image: %s", r)
		}
	})
	t.Run("hostile builds leak nothing from outside the context", func(t *testing.T) {
		parent := t.TempDir()
		const secret = "TOPSECRET-outside-the-context"
		os.WriteFile(filepath.Join(parent, "secret.txt"), []byte(secret+"\n"), 0o644)
		ctx := filepath.Join(parent, "ctx")
		os.MkdirAll(ctx, 0o755)
		os.Symlink("/etc/shadow", filepath.Join(ctx, "shadow"))
		os.Symlink("../secret.txt", filepath.Join(ctx, "up"))
		// Patterns that name the outside, re-include it, or climb.
		os.WriteFile(filepath.Join(ctx, ".dockerignore"), []byte("../*\n/etc/*\n!../secret.txt\n**/..\n!/etc/shadow\n"), 0o644)
		var evil bytes.Buffer
		tw := tar.NewWriter(&evil)
		tw.WriteHeader(&tar.Header{Name: "../../evil.txt", Mode: 0o644, Size: 4})
		tw.Write([]byte("evil"))
		tw.Close()
		os.WriteFile(filepath.Join(ctx, "evil.tar"), evil.Bytes(), 0o644)
		dockerfile := func(name, body string) string {
			p := filepath.Join(ctx, name)
			os.WriteFile(p, []byte("FROM "+img+"\n"+body), 0o644)
			return p
		}
		leaked := func(r result) bool {
			return strings.Contains(r.stdout+r.stderr, secret) || strings.Contains(r.stdout+r.stderr, "root:$")
		}

		// Symlinks in a copied directory are copied as symlinks: inside the
		// image they lead to the image's own files, never to the host's.
		r := tg.run("build", "-t", "e2e/hostile:v1", "-f", dockerfile("Dockerfile.links", "COPY . /in/\n"), ctx)
		if r.code != 0 {
			t.Fatalf("build with symlinks: %s", r)
		}
		r = tg.run("run", "--rm", "e2e/hostile:v1", "sh", "-c", "readlink /in/shadow; readlink /in/up; cat /in/shadow /in/up; ls -a / /in")
		if leaked(r) || !strings.Contains(r.stdout, "/etc/shadow\n../secret.txt\n") || strings.Contains(r.stdout, "\nsecret.txt\n") {
			t.Errorf("the symlinks' image: %s", r)
		}
		for name, body := range map[string]string{
			// A source that is a symlink is followed inside the context
			// only, where these find nothing: the build fails, as Docker's.
			"Dockerfile.abslink": "COPY shadow /s\n",
			"Dockerfile.uplink":  "COPY up /s\n",
			"Dockerfile.parent":  "COPY ../secret.txt /s\n",
			"Dockerfile.glob":    "COPY ../* /s/\n",
			"Dockerfile.abs":     "COPY /etc/shadow /s\n",
			"Dockerfile.tar":     "ADD evil.tar /x/\n",
		} {
			r := tg.run("build", "-f", dockerfile(name, body), ctx)
			if r.code == 0 || leaked(r) {
				t.Errorf("%s must fail without leaking: %s", name, r)
			}
		}
		// Nor did the tar's ../ entry land anywhere, on the host or in the VM.
		for _, p := range []string{filepath.Join(parent, "evil.txt"), filepath.Join(filepath.Dir(parent), "evil.txt")} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s exists", p)
			}
		}
		if r := tg.run("shell", "--", "sh", "-c", "find / /var/lib/vmbox -xdev -name evil.txt 2>/dev/null"); r.stdout != "" {
			t.Errorf("in the VM: %s", r)
		}
	})
	t.Run("a C program compiled in one stage runs from a busybox stage", func(t *testing.T) {
		cbase := compilerBase(t, tg)
		cdir := t.TempDir()
		writeHello := func(greeting string) {
			os.WriteFile(filepath.Join(cdir, "hello.c"), []byte(`#include <stdio.h>
#define STR(x) #x
#define XSTR(x) STR(x)

int main(void) {
	printf("%s, %s, from C: %d\n", "`+greeting+`", XSTR(WHO), 6 * 7);
	return 0;
}
`), 0o644)
		}
		writeHello("hello")
		// tcc 0.9.27 cannot link glibc statically (its TLS relocations), so
		// the build stage hands the busybox stage the loader and libc too:
		// tar -h follows the loader's symlink, the globs spare naming the
		// architecture.
		os.WriteFile(filepath.Join(cdir, "Dockerfile"), []byte(fmt.Sprintf(`FROM %s AS build
ARG WHO=world
WORKDIR /src
COPY hello.c .
RUN mkdir -p /out/usr/local/bin && tcc -DWHO=$WHO -o /out/usr/local/bin/hello hello.c && cd / && tar -chf - lib*/ld-linux*.so.* lib/*-linux-gnu/libc.so.6 | tar -xf - -C /out
FROM %s
COPY --from=build /out/ /
ENTRYPOINT ["hello"]
`, cbase, img)), 0o644)
		build := func() (result, string) {
			t.Helper()
			r := tg.run("build", "-t", "e2e/hello-c", "--build-arg", "WHO=e2e", cdir)
			i := strings.Index(r.stdout, "Successfully built ")
			if r.code != 0 || i < 0 {
				t.Fatalf("build: %s", r)
			}
			return r, strings.Fields(r.stdout[i+len("Successfully built "):])[0]
		}
		first, id := build()
		if r := tg.run("run", "--rm", "e2e/hello-c"); r.code != 0 || r.stdout != "hello, e2e, from C: 42\n" {
			t.Fatalf("run: %s\nbuilt with: %s", r, first.stdout)
		}
		// WORKDIR, COPY, RUN, COPY --from and ENTRYPOINT are cached; FROM and
		// ARG are not steps of the cache.
		again, againID := build()
		if strings.Count(again.stdout, "Using cache") != 5 || strings.Contains(again.stdout, "Running in") || againID != id {
			t.Errorf("a rebuild with nothing changed is not all cached:\n%s", again.stdout)
		}
		writeHello("goodbye")
		changed, changedID := build()
		before, after, _ := strings.Cut(changed.stdout, "Step 4/8 : COPY hello.c .")
		if strings.Count(before, "Using cache") != 1 || strings.Contains(before, "Running in") ||
			strings.Contains(after, "Using cache") || strings.Count(after, "Running in") != 1 || changedID == id {
			t.Errorf("a changed hello.c does not rerun exactly the steps from its COPY on:\n%s", changed.stdout)
		}
		if r := tg.run("run", "--rm", "e2e/hello-c"); r.stdout != "goodbye, e2e, from C: 42\n" {
			t.Errorf("run after the change: %s", r)
		}
	})
}

// compilerBase pushes a C toolchain image to the test registry and returns
// its name as the VM reaches it: busybox with Debian's tcc, libc6-dev and
// what they depend on, unpacked from the packages apt-get downloads.
func compilerBase(t *testing.T, tg *target) string {
	root := t.TempDir()
	for _, deb := range debs(t, "tcc", "libc6", "libc6-dev", "linux-libc-dev", "libgcc-s1") {
		if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	var entries []imagetest.Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if leftOutOfCompilerBase(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := imagetest.Entry{Name: rel, Mode: int64(fi.Mode().Perm())}
		switch {
		case d.IsDir():
			e.Type, e.Name = tar.TypeDir, rel+"/"
		case d.Type() == fs.ModeSymlink:
			e.Type, e.Mode = tar.TypeSymlink, 0o777
			e.Linkname, err = os.Readlink(p)
		default:
			e.Body, err = os.ReadFile(p)
		}
		entries = append(entries, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	img := imagetest.NewImage(t, v1.Config{Env: []string{imagetest.DefaultPath}, Cmd: []string{"sh"}},
		imagetest.Layer(t, imagetest.BusyboxEntries(t)), imagetest.Layer(t, entries))
	imagetest.Push(t, img, tg.hostReg+"/cbase:latest")
	return tg.reg + "/cbase"
}

// leftOutOfCompilerBase keeps the layer small (14 MB rather than 34): docs,
// iconv's charset modules, and the static archives that tcc cannot link
// glibc with anyway. The linker script libc.so names libc_nonshared.a, so
// that one stays.
func leftOutOfCompilerBase(rel string) bool {
	for _, pattern := range []string{"usr/share", "usr/lib/*/gconv", "usr/lib/*/lib*.a"} {
		if ok, _ := path.Match(pattern, rel); ok && path.Base(rel) != "libc_nonshared.a" {
			return true
		}
	}
	return false
}

// debs returns the .deb files of pkgs at the versions apt's lists name,
// kept under os.TempDir() across runs: the file names carry the versions,
// and apt-get download leaves alone a file it already has. The test is
// skipped if apt-get cannot fetch them.
func debs(t *testing.T, pkgs ...string) []string {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get is not installed: the compiler base is made from Debian's packages")
	}
	apt := func(dir string, args ...string) string {
		cmd := exec.Command("apt-get", append(append([]string{"download"}, args...), pkgs...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Skipf("apt-get download %v (run apt-get update?): %v\n%s", pkgs, err, out)
		}
		return string(out)
	}
	cache := filepath.Join(os.TempDir(), "vmbox-e2e-debs")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	apt(cache)
	// Run where it has nothing, --print-uris names every file it would fetch.
	out := apt(t.TempDir(), "--print-uris")
	var files []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasSuffix(f[1], ".deb") {
			files = append(files, filepath.Join(cache, f[1]))
		}
	}
	if len(files) != len(pkgs) {
		t.Fatalf("apt-get download --print-uris %v named %d files:\n%s", pkgs, len(files), out)
	}
	return files
}
