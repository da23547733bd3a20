package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildCases: vmbox build of a multi-stage Dockerfile (.dockerignore,
// build args, a target, the config instructions), a failing RUN, and the
// same builder through docker build and docker-compose build.
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
}
