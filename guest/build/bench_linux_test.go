package build_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/build"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/engine"
	"github.com/vmbox/vmbox/guest/image"
	"github.com/vmbox/vmbox/guest/image/imagetest"
)

func TestMain(m *testing.M) {
	if container.IsInit() {
		container.Init()
	}
	os.Exit(m.Run())
}

// The peers: Debian's buildah, and docker.io's daemon driven by its 20.10
// CLI.
const (
	dockerd   = "/usr/sbin/dockerd"
	dockerCLI = "/usr/bin/docker"
)

// benchDockerfile builds a small program's tree in one stage and ships it
// in another. The RUN after the COPY of the sources prints their checksum,
// so that the builders' outputs show they built the same inputs.
const benchDockerfile = `FROM busybox AS build
ENV SRC=/src OUT=/out
WORKDIR /src
RUN mkdir -p /out/gen && for i in $(seq 1 300); do echo "generated file $i" > /out/gen/g$i.txt; done
COPY src/ /src/
RUN find . -type f | sort | xargs cat | md5sum | tee /out/checksum && tar -cf /out/src.tar .
FROM busybox
ENV APP_HOME=/app
WORKDIR /app
RUN mkdir -p data && echo ready > data/state && echo "app:x:1000:1000::/app:/bin/sh" >> /etc/passwd
COPY --from=build /out/ /app/
RUN find /app -type f | wc -l > /app/manifest
CMD ["sh", "-c", "cat /app/checksum"]
`

const (
	// allCached is the number of steps a rebuild takes from the cache:
	// all but the FROMs.
	allCached = 11
	// cachedBeforeChange is the number of steps before the COPY of the
	// sources in each stage: the cache serves them after a source change.
	cachedBeforeChange = 6
	// changedFile is the source file the third build changes.
	changedFile = "src/pkg2/file3.go"
)

var scenarios = [...]string{"cold", "nochange", "onefile"}

// checksumLine is what the RUN after the COPY of the sources prints.
var checksumLine = regexp.MustCompile(`(?m)^([0-9a-f]{32})  -$`)

// builder is one builder set up with its own state and the busybox base
// image: build builds the context and returns its output; stop ends it
// and removes its state.
type builder struct {
	build func() string
	stop  func()
}

// builders are vmbox's and its peers', by name; each call of a setup
// makes fresh state.
var builders = []struct {
	name  string
	setup func(b *testing.B, ctxDir, archive string) builder
}{{"vmbox", vmboxBuilder}, {"buildah", buildahBuilder}, {"docker", dockerBuilder}}

// BenchmarkBuildCompare builds one Dockerfile of a common shape (two
// stages on the busybox test image; RUN steps writing files, a COPY of a
// 50-file source tree, COPY --from, ENV, WORKDIR, CMD) with vmbox's
// builder, `buildah bud --layers` and a private dockerd's classic builder
// (DOCKER_BUILDKIT=0 and the 20.10 CLI), each from fresh state holding
// only the base image, three times: cold (empty build cache), again with
// no change (every step from the cache) and after one source file
// changed (the cache serves the steps before the COPY of the sources).
// It reports each build's wall time, the medians of b.N rounds, and
// vmbox's ratio to the faster peer per scenario. vmbox's time covers
// writing the context as a tar, unpacking it and the build, in this
// process: the agent's part of `vmbox build`, without the VM channel;
// the peers' are their CLIs' runs. vmbox's background work (removing
// the steps' containers) is finished after each build, outside the
// timings, and the host's dirty pages are written out before each build,
// so that vmbox's syncfs of a commit does not flush the others' writes.
// Each build's output is checked: no cache hit cold, every step
// from the cache unchanged, the steps before the COPY after the change,
// and the same checksum of the sources printed by every builder.
func BenchmarkBuildCompare(b *testing.B) {
	containertest.Requirements(b)
	if _, err := exec.LookPath("buildah"); err != nil {
		b.Skip("buildah is not installed (hack/deps.sh installs it)")
	}
	for _, p := range []string{dockerd, dockerCLI} {
		if _, err := os.Stat(p); err != nil {
			b.Skipf("%s is not installed (hack/deps.sh installs Debian's docker.io)", p)
		}
	}
	var archive bytes.Buffer
	imagetest.WriteDockerArchive(b, &archive, map[string]v1.Image{"busybox:latest": imagetest.BusyboxImage(b)})
	archivePath := filepath.Join(b.TempDir(), "busybox.tar")
	if err := os.WriteFile(archivePath, archive.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	ctxDir := benchContext(b)
	changed := filepath.Join(ctxDir, changedFile)
	original, err := os.ReadFile(changed)
	if err != nil {
		b.Fatal(err)
	}
	times := make([][len(scenarios)][]time.Duration, len(builders))
	b.ResetTimer()
	for range b.N {
		var sums [len(scenarios)]string
		for i, by := range builders {
			bl := by.setup(b, ctxDir, archivePath)
			for s, scenario := range scenarios {
				body := original
				if scenario == "onefile" {
					body = append(slices.Clone(original), "// changed\n"...)
				}
				if err := os.WriteFile(changed, body, 0o644); err != nil {
					b.Fatal(err)
				}
				syscall.Sync() // vmbox's syncfs would flush what ran before
				start := time.Now()
				out := bl.build()
				times[i][s] = append(times[i][s], time.Since(start))
				if sum := checkBuild(b, by.name, scenario, out); i == 0 {
					sums[s] = sum
				} else if sum != sums[s] {
					b.Fatalf("%s %s: sources checksum %q, vmbox's %q: the builders did not build the same inputs", by.name, scenario, sum, sums[s])
				}
			}
			bl.stop()
		}
		if sums[0] == sums[2] {
			b.Fatalf("the change of %s did not change the sources checksum %s", changedFile, sums[0])
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for s, scenario := range scenarios {
		for i, by := range builders {
			b.ReportMetric(ms(containertest.Median(times[i][s])), by.name+"-"+scenario+"-ms")
		}
		fastest := min(containertest.Median(times[1][s]), containertest.Median(times[2][s]))
		b.ReportMetric(ms(containertest.Median(times[0][s]))/ms(fastest), scenario+"-x-fastest")
	}
}

// checkBuild fails the benchmark unless out is a build of scenario, and
// returns the sources checksum it printed ("" when the step was cached).
func checkBuild(b *testing.B, name, scenario, out string) string {
	b.Helper()
	want := map[string]int{"cold": 0, "nochange": allCached, "onefile": cachedBeforeChange}[scenario]
	if n := strings.Count(out, "Using cache"); n != want {
		b.Fatalf("%s %s: %d steps from the cache, want %d:\n%s", name, scenario, n, want, out)
	}
	sums := checksumLine.FindAllStringSubmatch(out, -1)
	if scenario == "nochange" {
		if len(sums) != 0 {
			b.Fatalf("%s %s: a RUN ran:\n%s", name, scenario, out)
		}
		return ""
	}
	if len(sums) != 1 {
		b.Fatalf("%s %s: %d sources checksums printed, want 1:\n%s", name, scenario, len(sums), out)
	}
	return sums[0][1]
}

// benchContext writes the build context: the Dockerfile and 50 source
// files of about 1 kB in src/pkg0..4.
func benchContext(b *testing.B) string {
	dir := b.TempDir()
	files := map[string]string{"Dockerfile": benchDockerfile}
	for p := range 5 {
		for f := range 10 {
			var src strings.Builder
			fmt.Fprintf(&src, "package pkg%d\n\n", p)
			for l := range 20 {
				fmt.Fprintf(&src, "func F%d_%d() int { return %d }\n", f, l, p*1000+f*100+l)
			}
			files[fmt.Sprintf("src/pkg%d/file%d.go", p, f)] = src.String()
		}
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// vmboxBuilder is vmbox's builder on an engine and image store of its
// own. A build sends the context through a tar into a directory of the
// data root, as the agent receives it.
func vmboxBuilder(b *testing.B, ctxDir, archive string) builder {
	dir := b.TempDir()
	imgs, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(archive)
	if err != nil {
		b.Fatal(err)
	}
	_, err = imgs.Load(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	parent := "vmbox-btest-" + containertest.RandHex(4)
	eng, err := engine.New(engine.Options{Root: filepath.Join(dir, "engine"), Images: imgs, Runtime: container.Options{CgroupParent: parent}})
	if err != nil {
		imgs.Close()
		b.Fatal(err)
	}
	stop := sync.OnceFunc(func() {
		if err := eng.Close(); err != nil {
			b.Errorf("engine close: %v", err)
		}
		imgs.Close()
		containertest.RemoveCgroupParent(parent)
	})
	b.Cleanup(stop)
	eng.Idle() // its warm helper is ready, as a running daemon's would be
	bl := &build.Builder{Engine: eng, Images: imgs}
	tmp := filepath.Join(dir, "build-tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		b.Fatal(err)
	}
	return builder{stop: stop, build: func() string {
		var out bytes.Buffer
		err := func() error {
			ctx, err := os.MkdirTemp(tmp, "context-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(ctx)
			pr, pw := io.Pipe()
			go func() {
				tw := tar.NewWriter(pw)
				err := container.WriteTree(tw, ctxDir, "")
				if err == nil {
					err = tw.Close()
				}
				pw.CloseWithError(err)
			}()
			err = build.UnpackContext(pr, ctx)
			pr.Close()
			if err != nil {
				return err
			}
			_, err = bl.Build(context.Background(), build.Options{Context: ctx, Tags: []string{"bench"}}, &out)
			return err
		}()
		if err != nil {
			b.Fatalf("vmbox build: %v\n%s", err, out.String())
		}
		eng.Idle()
		return out.String()
	}}
}

// buildahBuilder is `buildah bud --layers` with its own storage (the
// overlay driver) and chroot isolation: its default, OCI isolation with
// crun, refuses this cgroup v1 hybrid host.
func buildahBuilder(b *testing.B, ctxDir, archive string) builder {
	dir := b.TempDir()
	buildah := func(args ...string) string {
		args = append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "overlay"}, args...)
		return command(b, nil, "buildah", args...)
	}
	stop := sync.OnceFunc(func() { unmountUnder(b, dir) })
	b.Cleanup(stop)
	buildah("pull", "-q", "docker-archive:"+archive)
	return builder{stop: stop, build: func() string {
		return buildah("bud", "--layers", "--pull=never", "--isolation", "chroot", "-t", "bench", ctxDir)
	}}
}

// dockerBuilder is the classic builder of a dockerd of its own: its own
// data and exec roots, socket and configuration, no bridge, no iptables.
func dockerBuilder(b *testing.B, ctxDir, archive string) builder {
	dir := b.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"deprecated-key-path": %q}`, filepath.Join(dir, "key.json")), 0o644); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(dockerd, "--config-file", cfg, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", "unix://"+sock, "--bridge=none", "--iptables=false", "--ip-masq=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	stop := sync.OnceFunc(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // it and its containerd
			<-exited
		}
		unmountUnder(b, dir)
	})
	b.Cleanup(stop)
	env := []string{"DOCKER_HOST=unix://" + sock, "DOCKER_CONFIG=" + filepath.Join(dir, "cli"), "DOCKER_BUILDKIT=0"}
	answers := func() bool {
		cmd := exec.Command(dockerCLI, "version")
		cmd.Env = append(os.Environ(), env...)
		return cmd.Run() == nil
	}
	for deadline := time.Now().Add(time.Minute); !answers(); {
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("dockerd exited:\n%s", log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatal("dockerd did not answer in a minute")
		}
	}
	command(b, env, dockerCLI, "load", "-q", "-i", archive)
	return builder{stop: stop, build: func() string {
		return command(b, env, dockerCLI, "build", "-t", "bench", ctxDir)
	}}
}

// command runs name with env added and returns its output; it fails the
// benchmark on error.
func command(b *testing.B, env []string, name string, args ...string) string {
	b.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// unmountUnder detaches the mounts a peer left under dir, deepest first,
// so that dir can be removed.
func unmountUnder(b *testing.B, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	slices.Reverse(mounts)
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			b.Errorf("unmount %s: %v", m, err)
		}
	}
}
