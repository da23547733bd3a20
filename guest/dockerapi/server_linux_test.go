package dockerapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
	"github.com/vmbox/vmbox/guest/container/containertest"
	"github.com/vmbox/vmbox/guest/dockerapi"
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

// The docker CLIs the API is checked with: the current one and Debian's
// 20.10 (API 1.41).
const (
	dockerCLI     = "/usr/local/bin/docker"
	dockerCLI2010 = "/usr/bin/docker"
)

// apiServer is a real engine with its Docker API on a Unix socket.
type apiServer struct {
	sock   string
	eng    *engine.Engine
	images *image.Store
	config string // DOCKER_CONFIG for the CLIs: no user's contexts or credentials
}

func startServer(t *testing.T) *apiServer {
	t.Helper()
	containertest.Requirements(t)
	dir := t.TempDir()
	imgs, err := image.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { imgs.Close() })
	var buf bytes.Buffer
	imagetest.WriteDockerArchive(t, &buf, map[string]v1.Image{"busybox:latest": imagetest.BusyboxImage(t)})
	if _, err := imgs.Load(&buf); err != nil {
		t.Fatal(err)
	}
	parent := "vmbox-dapitest-" + containertest.RandHex(4)
	eng, err := engine.New(engine.Options{Root: filepath.Join(dir, "engine"), Images: imgs, Runtime: container.Options{CgroupParent: parent}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eng.Close()
		containertest.RemoveCgroupParent(parent)
	})
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := dockerapi.New(dockerapi.Options{Engine: eng, Images: imgs, DataRoot: dir,
		Version: api.Version{Version: "0.0.0-test", Os: "linux", Arch: "amd64", KernelVersion: "test"}})
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cfg := filepath.Join(dir, "docker-config")
	os.MkdirAll(cfg, 0o700)
	return &apiServer{sock: sock, eng: eng, images: imgs, config: cfg}
}

type result struct {
	stdout, stderr string
	code           int
}

// docker runs a docker CLI against the server.
func (s *apiServer) docker(t *testing.T, cli string, stdin io.Reader, args ...string) result {
	t.Helper()
	return s.run(t, cli, stdin, nil, args...)
}

// dockerEnv is docker with more environment variables.
func (s *apiServer) dockerEnv(t *testing.T, cli string, env []string, args ...string) result {
	t.Helper()
	return s.run(t, cli, nil, env, args...)
}

func (s *apiServer) run(t *testing.T, cli string, stdin io.Reader, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), containertest.Patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config, "DOCKER_CLI_HINTS=false")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", cli, args, err)
	}
	return result{out.String(), errb.String(), code}
}

func needCLI(t *testing.T, cli string) {
	t.Helper()
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("%s is not installed (hack/deps.sh installs Debian's docker.io)", cli)
	}
}

// TestDockerCLIs drives the engine with the real docker CLIs, command by
// command, checking output and exit codes.
func TestDockerCLIs(t *testing.T) {
	s := startServer(t)
	for name, cli := range map[string]string{"cli28": dockerCLI, "cli20.10": dockerCLI2010} {
		t.Run(name, func(t *testing.T) {
			needCLI(t, cli)
			run := func(stdin io.Reader, args ...string) result { return s.docker(t, cli, stdin, args...) }
			tests := []struct {
				name     string
				args     []string
				stdin    string
				wantCode int
				wantOut  string // substring of stdout
				wantErr  string // substring of stderr
			}{
				{name: "version", args: []string{"version"}, wantOut: "OS/Arch:          linux/amd64"},
				{name: "info", args: []string{"info", "--format", "{{.OSType}} {{.Architecture}} {{.Swarm.LocalNodeState}}"}, wantOut: "linux x86_64 inactive"},
				{name: "run rm", args: []string{"run", "--rm", "busybox", "echo", "hello"}, wantOut: "hello\n"},
				{name: "exit code", args: []string{"run", "--rm", "busybox", "sh", "-c", "exit 3"}, wantCode: 3},
				{name: "not found", args: []string{"run", "--rm", "busybox", "nosuchcommand"}, wantCode: 127, wantErr: "executable file not found"},
				{name: "not executable", args: []string{"run", "--rm", "busybox", "/etc"}, wantCode: 126},
				{name: "engine error", args: []string{"run", "--rm", "--memory", "1k", "busybox", "true"}, wantCode: 125, wantErr: "minimum memory limit"},
				{name: "stdin", args: []string{"run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z"}, stdin: "piped\n", wantOut: "PIPED\n"},
				{name: "umask", args: []string{"run", "--rm", "busybox", "sh", "-c", "umask"}, wantOut: "0022\n"},
				{name: "stderr", args: []string{"run", "--rm", "busybox", "sh", "-c", "echo oops >&2"}, wantErr: "oops\n"},
				{name: "no such container", args: []string{"logs", "nosuchcontainer"}, wantCode: 1, wantErr: "No such container: nosuchcontainer"},
				{name: "images", args: []string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, wantOut: "busybox:latest"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var stdin io.Reader
					if tt.stdin != "" {
						stdin = strings.NewReader(tt.stdin)
					}
					r := run(stdin, tt.args...)
					if r.code != tt.wantCode || !strings.Contains(r.stdout, tt.wantOut) || !strings.Contains(r.stderr, tt.wantErr) {
						t.Errorf("docker %v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
							tt.args, r.code, r.stdout, r.stderr, tt.wantCode, tt.wantOut, tt.wantErr)
					}
				})
			}
		})
	}
}

// TestContainerLifecycle: run -d, logs -f, exec, ps filters, stop, kill,
// rm.
func TestContainerLifecycle(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	d := func(args ...string) result { return s.docker(t, dockerCLI, nil, args...) }
	must := func(args ...string) string {
		t.Helper()
		r := d(args...)
		if r.code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	id := strings.TrimSpace(must("run", "-d", "--name", "web", "-l", "app=web", "busybox", "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want an ID", id)
	}
	// logs -f follows until the container stops.
	follow := exec.Command(dockerCLI, "logs", "-f", "web")
	follow.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config)
	var followed bytes.Buffer
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	if out := must("exec", "web", "sh", "-c", "echo in-exec; echo exec-err >&2"); out != "in-exec\n" {
		t.Errorf("exec printed %q", out)
	}
	if r := d("exec", "web", "sh", "-c", "exit 4"); r.code != 4 {
		t.Errorf("exec exit code %d, want 4", r.code)
	}
	if r := d("exec", "web", "nosuch"); r.code != 127 {
		t.Errorf("exec of a missing command: exit %d, want 127", r.code)
	}
	if out := must("ps", "-a", "--filter", "label=app=web", "--format", "{{.Names}} {{.State}}"); out != "web running\n" {
		t.Errorf("ps --filter label: %q", out)
	}
	if out := must("ps", "-a", "--filter", "label=app=other", "-q"); out != "" {
		t.Errorf("ps --filter label=app=other: %q", out)
	}
	var insp []map[string]any
	if err := json.Unmarshal([]byte(must("inspect", "web")), &insp); err != nil || len(insp) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	if cfg, _ := insp[0]["Config"].(map[string]any); cfg == nil || cfg["Labels"].(map[string]any)["app"] != "web" {
		t.Errorf("inspect Config: %v", insp[0]["Config"])
	}
	must("stop", "web")
	waitErr := make(chan error, 1)
	go func() { waitErr <- follow.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("logs -f: %v", err)
		}
	case <-time.After(containertest.Patience):
		follow.Process.Kill()
		t.Fatal("logs -f did not end when the container stopped")
	}
	if got := followed.String(); got != "started\nbye\n" {
		t.Errorf("logs -f printed %q", got)
	}
	if out := must("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "web Exited (0)") {
		t.Errorf("ps status=exited: %q", out)
	}
	must("rename", "web", "web2")
	if out := must("ps", "-a", "--filter", "name=web2", "--format", "{{.Names}}"); out != "web2\n" {
		t.Errorf("ps after rename: %q", out)
	}
	must("rm", "web2")
	if r := d("rm", "web"); r.code != 1 || !strings.Contains(r.stderr, "No such container") {
		t.Errorf("rm twice: exit %d %q", r.code, r.stderr)
	}

	// A killed container: 137 from run and from wait.
	must("run", "-d", "--name", "sleeper", "busybox", "sleep", "60")
	must("kill", "sleeper")
	if out := must("wait", "sleeper"); out != "137\n" {
		t.Errorf("wait after kill: %q", out)
	}
	must("rm", "sleeper")

}

// TestStatsTop reads a busy container's use through stats and top.
func TestStatsTop(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	if r := s.docker(t, dockerCLI, nil, "run", "-d", "--name", "busy", "--memory", "64m", "busybox", "sh", "-c", "while :; do :; done"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	defer s.docker(t, dockerCLI, nil, "rm", "-f", "busy")
	r := s.docker(t, dockerCLI, nil, "stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "busy")
	f := strings.Split(strings.TrimSpace(r.stdout), "|")
	if r.code != 0 || len(f) != 4 || f[0] != "busy" || f[1] == "0.00%" || !strings.HasSuffix(f[2], "/ 64MiB") || f[3] != "1" {
		t.Errorf("stats: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = s.docker(t, dockerCLI, nil, "top", "busy")
	if r.code != 0 || !strings.Contains(r.stdout, "PID") || !strings.Contains(r.stdout, "while :; do :; done") {
		t.Errorf("top: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestCopy: docker cp both ways, into a running and a created container,
// with symlinks in the container kept inside it.
func TestCopy(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	d := func(args ...string) result { return s.docker(t, dockerCLI, nil, args...) }
	must := func(args ...string) string {
		t.Helper()
		r := d(args...)
		if r.code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "tree", "a.txt"), []byte("one\n"), 0o640)
	os.WriteFile(filepath.Join(src, "tree", "sub", "b.txt"), []byte("two\n"), 0o644)
	os.Symlink("a.txt", filepath.Join(src, "tree", "link"))

	// A container whose /escape points at / and /etcl at /etc: copies
	// through them must land in its own root, never in this host's.
	must("run", "-d", "--name", "cp", "busybox", "sh", "-c", "ln -s / /escape; ln -s /etc /etcl; sleep 300")
	defer d("rm", "-f", "cp")
	must("cp", filepath.Join(src, "tree"), "cp:/tmp/")
	if out := must("exec", "cp", "sh", "-c", "cat /tmp/tree/a.txt /tmp/tree/sub/b.txt; readlink /tmp/tree/link; stat -c %a /tmp/tree/a.txt"); out != "one\ntwo\na.txt\n640\n" {
		t.Errorf("copied in: %q", out)
	}
	dst := t.TempDir()
	must("cp", "cp:/tmp/tree", filepath.Join(dst, "back"))
	if b, err := os.ReadFile(filepath.Join(dst, "back", "sub", "b.txt")); err != nil || string(b) != "two\n" {
		t.Errorf("copied out: %q %v", b, err)
	}
	marker := "vmbox-cp-escape-" + containertest.RandHex(4)
	os.WriteFile(filepath.Join(src, marker), []byte("x"), 0o644)
	must("cp", filepath.Join(src, marker), "cp:/escape/tmp/")
	if _, err := os.Stat(filepath.Join("/tmp", marker)); err == nil {
		os.Remove(filepath.Join("/tmp", marker))
		t.Fatal("a copy through a symlink in the container wrote to the host's /tmp")
	}
	if out := must("exec", "cp", "cat", "/tmp/"+marker); out != "x" {
		t.Errorf("copy through /escape: %q", out)
	}
	must("exec", "cp", "sh", "-c", "echo container-hostname > /etc/hostname")
	must("cp", "cp:/etcl/hostname", filepath.Join(dst, "hostname"))
	if b, _ := os.ReadFile(filepath.Join(dst, "hostname")); string(b) != "container-hostname\n" {
		t.Errorf("copy out through /etcl read %q, not the container's /etc/hostname", b)
	}
	if r := d("cp", "cp:/nosuchfile", dst); r.code != 1 || !strings.Contains(r.stderr, "Could not find the file /nosuchfile") {
		t.Errorf("cp of a missing path: exit %d %q", r.code, r.stderr)
	}

	// A created container gets the file before it ever starts.
	must("create", "--name", "fresh", "busybox", "cat", "/greeting")
	defer d("rm", "-f", "fresh")
	os.WriteFile(filepath.Join(src, "greeting"), []byte("hello before start\n"), 0o644)
	must("cp", filepath.Join(src, "greeting"), "fresh:/greeting")
	if out := must("start", "-a", "fresh"); out != "hello before start\n" {
		t.Errorf("created container read %q", out)
	}
}

// TestTerminal runs docker run -it under a pseudo-terminal (script(1)).
func TestTerminal(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	containertest.NeedTool(t, "script")
	cmd := exec.Command("script", "-qec", "stty cols 91 rows 33; "+dockerCLI+" run -it --rm busybox sh -c 'tty; stty size; exit 5'", "/dev/null")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("run -it: %v, output %q", err, out)
	}
	// What script(1) passes on from its own stdin (closed) may echo
	// before the answers; only the answers are checked.
	got := strings.ReplaceAll(string(out), "\r", "")
	if !strings.Contains(got, "/dev/pts/0\n") || !strings.Contains(got, "33 91\n") {
		t.Errorf("run -it printed %q, want the terminal and its size", got)
	}
}

// TestImages: pull from a registry on loopback, tag, rmi, save and load.
func TestImages(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	addr := imagetest.StartRegistry(t)
	digest := imagetest.Push(t, imagetest.HelloImage(t), addr+"/hello:v1")
	must := func(stdin io.Reader, args ...string) string {
		t.Helper()
		r := s.docker(t, dockerCLI, stdin, args...)
		if r.code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	out := must(nil, "pull", addr+"/hello:v1")
	if !strings.Contains(out, "Digest: "+digest) || !strings.Contains(out, "Downloaded newer image for "+addr+"/hello:v1") {
		t.Errorf("pull printed %q", out)
	}
	if r := s.docker(t, dockerCLI, nil, "pull", addr+"/nosuch:v1"); r.code != 1 {
		t.Errorf("pull of a missing image: exit %d, %q", r.code, r.stderr)
	}
	if out := must(nil, "run", "--rm", addr+"/hello:v1"); !strings.Contains(out, "Hello") {
		t.Errorf("run of the pulled image printed %q", out)
	}
	// push: a new name in another repository, pulled back with the same digest.
	must(nil, "tag", addr+"/hello:v1", addr+"/pushed/hello:v2")
	if out := must(nil, "push", addr+"/pushed/hello:v2"); !strings.Contains(out, "v2: digest: "+digest) {
		t.Errorf("push printed %q", out)
	}
	must(nil, "rmi", addr+"/pushed/hello:v2")
	if out := must(nil, "pull", addr+"/pushed/hello:v2"); !strings.Contains(out, "Digest: "+digest) {
		t.Errorf("pull of the pushed image printed %q", out)
	}
	if r := s.docker(t, dockerCLI, nil, "push", addr+"/nosuch:v1"); r.code != 1 {
		t.Errorf("push of a missing image: exit %d %q", r.code, r.stderr)
	}
	// The test image has one layer and no recorded history: one step,
	// the image itself.
	id := strings.TrimSpace(must(nil, "images", "-q", addr+"/hello:v1"))
	if out := must(nil, "history", "-q", addr+"/hello:v1"); out != id+"\n" {
		t.Errorf("history: %q, want the image %s", out, id)
	}
	must(nil, "tag", addr+"/hello:v1", "hello:mine")
	if out := must(nil, "images", "--format", "{{.Repository}}:{{.Tag}}", "hello"); out != "hello:mine\n" {
		t.Errorf("images hello: %q", out)
	}
	archive := must(nil, "save", "hello:mine")
	must(nil, "rmi", "hello:mine")
	if r := s.docker(t, dockerCLI, nil, "image", "inspect", "hello:mine"); r.code != 1 {
		t.Errorf("inspect after rmi: exit %d", r.code)
	}
	if out := must(strings.NewReader(archive), "load"); !strings.Contains(out, "Loaded image: hello:mine") {
		t.Errorf("load printed %q", out)
	}
	if r := s.docker(t, dockerCLI, nil, "run", "-d", "--name", "user", "busybox", "sleep", "30"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := s.docker(t, dockerCLI, nil, "rmi", "busybox"); r.code != 1 || !strings.Contains(r.stderr, "conflict") {
		t.Errorf("rmi of an image in use: exit %d, %q", r.code, r.stderr)
	}
	must(nil, "rm", "-f", "user")
}

// TestPythonSDK drives the engine with docker-py.
func TestPythonSDK(t *testing.T) {
	s := startServer(t)
	if exec.Command("python3", "-c", "import docker").Run() != nil {
		t.Skip("python3-docker is not installed (hack/deps.sh installs it)")
	}
	script := `
import docker
c = docker.DockerClient(base_url="unix://` + s.sock + `")
v = c.version()
assert v["Os"] == "linux", v
ct = c.containers.create("busybox", ["sh", "-c", "echo py-out; exit 7"], labels={"k": "v"})
ct.start()
res = ct.wait()
assert res["StatusCode"] == 7, res
assert ct.logs() == b"py-out\n", ct.logs()
assert [x.id for x in c.containers.list(all=True, filters={"label": "k=v"})] == [ct.id]
ct.remove()
print(c.containers.run("busybox", "echo run-out", remove=True).decode(), end="")
`
	out, err := exec.Command("python3", "-c", script).CombinedOutput()
	if err != nil || string(out) != "run-out\n" {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// TestHTTP checks what clients see below the CLIs: negotiation headers,
// versioned paths, JSON errors and 501s.
func TestHTTP(t *testing.T) {
	s := startServer(t)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.sock)
	}}}
	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{"HEAD", "/_ping", 200, ""},
		{"GET", "/_ping", 200, "OK"},
		{"GET", "/v1.41/version", 200, `"ApiVersion":"` + dockerapi.APIVersion + `"`},
		{"GET", "/v1.99/version", 400, `{"message":"client version 1.99 is too new. Maximum supported API version is ` + dockerapi.APIVersion + `"}`},
		{"GET", "/v1.12/version", 400, "too old"},
		{"GET", "/containers/nosuch/json", 404, `{"message":"No such container: nosuch"}`},
		{"GET", "/images/nosuch:1/json", 404, `"message"`},
		{"POST", "/containers/create", 400, "config cannot be empty"},
		{"POST", "/swarm/init", 501, `{"message":"POST /swarm/init is not implemented by vmbox"}`},
		{"GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", 400, "bogus"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://docker"+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("%s %s: %d %q, want %d with %q", tt.method, tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
		}
		if resp.Header.Get("Api-Version") != dockerapi.APIVersion || resp.Header.Get("Ostype") != "linux" {
			t.Errorf("%s %s: headers %v", tt.method, tt.path, resp.Header)
		}
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: error with Content-Type %q", tt.method, tt.path, resp.Header.Get("Content-Type"))
		}
	}
}

// TestEvents follows the event stream while a container lives and dies,
// and reads the same events back with --since/--until.
func TestEvents(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	start := time.Now().Add(-time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// --since makes the stream start with what happened before it was
	// subscribed: no race with the run below.
	follow := exec.CommandContext(ctx, dockerCLI, "events", "--since", fmt.Sprint(start.Unix()), "--filter", "container=ev", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
	follow.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config)
	var out syncBuf
	follow.Stdout = &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	if r := s.docker(t, dockerCLI, nil, "run", "--rm", "--name", "ev", "busybox", "true"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	s.docker(t, dockerCLI, nil, "run", "--rm", "--name", "other", "busybox", "true")
	want := "container create ev\ncontainer start ev\ncontainer die ev\ncontainer destroy ev\n"
	deadline := time.Now().Add(containertest.Patience)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	follow.Wait()
	if got := out.String(); got != want {
		t.Errorf("events followed: %q, want %q", got, want)
	}
	r := s.docker(t, dockerCLI, nil, "events", "--since", fmt.Sprint(start.Unix()), "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "event=die", "--format", "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
	if r.code != 0 || r.stdout != "ev 0\nother 0\n" {
		t.Errorf("events --since --until: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// syncBuf is a buffer a process writes while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestVolumesCLI: docker volume commands, -v and --mount, rm -v, a
// volume in use.
func TestVolumesCLI(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	d := func(args ...string) result { return s.docker(t, dockerCLI, nil, args...) }
	must := func(args ...string) string {
		t.Helper()
		r := d(args...)
		if r.code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	if out := must("volume", "create", "--label", "k=v", "data"); out != "data\n" {
		t.Errorf("volume create: %q", out)
	}
	if out := must("volume", "ls", "--filter", "label=k=v", "--format", "{{.Name}} {{.Driver}}"); out != "data local\n" {
		t.Errorf("volume ls: %q", out)
	}
	must("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo one > /data/f")
	if out := must("run", "--rm", "--mount", "type=volume,source=data,target=/d,readonly", "busybox", "cat", "/d/f"); out != "one\n" {
		t.Errorf("read back: %q", out)
	}
	if r := d("run", "--rm", "--mount", "type=volume,source=data,target=/d,readonly", "busybox", "touch", "/d/g"); r.code == 0 {
		t.Error("a read-only volume took a write")
	}
	id := strings.TrimSpace(must("create", "-v", "/anon", "busybox", "true"))
	var insp []struct {
		Mounts []struct{ Type, Name, Destination string }
	}
	json.Unmarshal([]byte(must("inspect", id)), &insp)
	if len(insp) != 1 || len(insp[0].Mounts) != 1 || insp[0].Mounts[0].Type != "volume" || insp[0].Mounts[0].Destination != "/anon" {
		t.Fatalf("inspect Mounts: %+v", insp)
	}
	anon := insp[0].Mounts[0].Name
	if r := d("volume", "rm", anon); r.code != 1 || !strings.Contains(r.stderr, "volume is in use") {
		t.Errorf("rm of a volume in use: exit %d %q", r.code, r.stderr)
	}
	must("rm", "-v", id)
	if r := d("volume", "inspect", anon); r.code != 1 {
		t.Errorf("anonymous volume left after rm -v: exit %d", r.code)
	}
	must("volume", "rm", "data")
	if out := must("volume", "ls", "-q"); out != "" {
		t.Errorf("volumes left: %q", out)
	}
}

// TestCommitCLI: docker commit of a container's changes, run.
func TestCommitCLI(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	must := func(args ...string) string {
		t.Helper()
		r := s.docker(t, dockerCLI, nil, args...)
		if r.code != 0 {
			t.Fatalf("docker %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	must("run", "--name", "src", "busybox", "sh", "-c", "echo committed > /note")
	must("commit", "--change", "CMD cat /note", "-c", "ENV FROM_COMMIT=1", "src", "noted:v1")
	if out := must("run", "--rm", "noted:v1"); out != "committed\n" {
		t.Errorf("run of the committed image: %q", out)
	}
	if out := must("inspect", "--format", "{{json .Config.Env}}", "noted:v1"); !strings.Contains(out, "FROM_COMMIT=1") {
		t.Errorf("committed config: %q", out)
	}
	if r := s.docker(t, dockerCLI, nil, "commit", "--change", "RUN true", "src", "bad:v1"); r.code != 1 {
		t.Errorf("commit with RUN: exit %d %q", r.code, r.stderr)
	}
}

// TestBuild: docker build (the classic builder) of a multi-stage
// Dockerfile with build args and a target; a failing RUN tags nothing.
func TestBuild(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "msg.txt"), []byte("from the context\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(`ARG BASE=busybox
FROM $BASE AS builder
ARG GREETING=hi
WORKDIR /work
COPY src/ ./
RUN echo "$GREETING $(cat msg.txt)" > out.txt
FROM busybox AS final
ENV APP=demo
COPY --from=builder /work/out.txt /app/out.txt
USER 1000
WORKDIR /app
ENTRYPOINT ["cat"]
CMD ["out.txt"]
`), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.fail"), []byte("FROM busybox\nRUN echo before; exit 7\n"), 0o644)
	for name, cli := range map[string]string{"cli28": dockerCLI, "cli20.10": dockerCLI2010} {
		t.Run(name, func(t *testing.T) {
			needCLI(t, cli)
			cmd := func(args ...string) result {
				t.Helper()
				c := exec.Command(cli, args...)
				c.Env = append(os.Environ(), "DOCKER_HOST=unix://"+s.sock, "DOCKER_CONFIG="+s.config, "DOCKER_BUILDKIT=0")
				var out, errb bytes.Buffer
				c.Stdout, c.Stderr = &out, &errb
				err := c.Run()
				code := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					code = ee.ExitCode()
				}
				return result{out.String(), errb.String(), code}
			}
			tag := "built-" + strings.ReplaceAll(name, ".", "") + ":v1"
			r := cmd("build", "-t", tag, "--build-arg", "GREETING=howdy", dir)
			if r.code != 0 || !strings.Contains(r.stdout, "Step 6/13 : RUN") || !strings.Contains(r.stdout, "Successfully tagged "+tag) {
				t.Fatalf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if r := cmd("run", "--rm", tag); r.stdout != "howdy from the context\n" {
				t.Errorf("run of the built image: %+v", r)
			}
			// Built again, every step that can be cached is (9 of 13: ARG and
			// FROM are not steps with images of their own).
			if r := cmd("build", "-t", tag, "--build-arg", "GREETING=howdy", dir); strings.Count(r.stdout, "Using cache") != 9 || strings.Contains(r.stdout, "Running in") {
				t.Errorf("rebuild: %+v", r)
			}
			if r := cmd("build", "--no-cache", "-t", tag, "--build-arg", "GREETING=howdy", dir); strings.Contains(r.stdout, "Using cache") {
				t.Errorf("--no-cache used the cache: %+v", r)
			}
			if r := cmd("inspect", "--format", "{{.Config.User}} {{.Config.WorkingDir}} {{json .Config.Entrypoint}}", tag); r.stdout != "1000 /app [\"cat\"]\n" {
				t.Errorf("built config: %+v", r)
			}
			if r := cmd("build", "-q", "--target", "builder", "-t", tag+"-builder", dir); r.code != 0 || !strings.HasPrefix(r.stdout, "sha256:") {
				t.Errorf("build --target: %+v", r)
			}
			r = cmd("build", "-f", filepath.Join(dir, "Dockerfile.fail"), "-t", "fails:v1", dir)
			// The docker CLI exits with the code errorDetail carries, as
			// with Docker's classic builder.
			if r.code != 7 || !strings.Contains(r.stdout+r.stderr, "returned a non-zero code: 7") {
				t.Errorf("failing build: %+v", r)
			}
			if r := cmd("image", "inspect", "fails:v1"); r.code == 0 {
				t.Error("a failed build tagged its image")
			}
		})
	}
}

// TestLoginCLI: docker login checks the credentials through POST /auth.
func TestLoginCLI(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	reg := imagetest.NewRegistry(t, imagetest.RegistryOptions{User: "alice", Password: "s3cret"})
	if r := s.docker(t, dockerCLI, strings.NewReader("wrong"), "login", "-u", "alice", "--password-stdin", reg.Addr); r.code != 1 || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("login with a wrong password: exit %d %q", r.code, r.stderr)
	}
	if r := s.docker(t, dockerCLI, strings.NewReader("s3cret"), "login", "-u", "alice", "--password-stdin", reg.Addr); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Errorf("login: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestBuildAddURLAndChownNames: ADD of a URL (fetched at each build, its
// content keying the cache, mode 600, never unpacked) and --chown by
// user and group names from the image's /etc/passwd and /etc/group.
func TestBuildAddURLAndChownNames(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	body := "first version\n"
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/files/notes.txt" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "local.txt"), []byte("local\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(`FROM busybox
ADD `+srv.URL+`/files/notes.txt /data/
ADD `+srv.URL+`/files/notes.txt /data/renamed.txt
COPY --chown=nobody:nobody local.txt /data/local.txt
WORKDIR /w
COPY local.txt .
COPY local.txt /etc
CMD ["sh", "-c", "stat -c '%a %U:%G %n' /data/notes.txt /data/renamed.txt /data/local.txt /w/local.txt /etc/local.txt; cat /data/notes.txt"]
`), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.missing"), []byte("FROM busybox\nADD "+srv.URL+"/nothing.txt /x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.badchown"), []byte("FROM busybox\nCOPY --chown=nosuchuser local.txt /x\n"), 0o644)
	build := func(args ...string) result {
		t.Helper()
		return s.dockerEnv(t, dockerCLI, []string{"DOCKER_BUILDKIT=0"}, append([]string{"build"}, args...)...)
	}
	if r := build("-t", "fetched:v1", dir); r.code != 0 {
		t.Fatalf("build: %+v", r)
	}
	// COPY into "." and into an existing directory named without a
	// slash copies into the directory, as in Docker.
	want := "600 root:root /data/notes.txt\n600 root:root /data/renamed.txt\n644 nobody:nobody /data/local.txt\n644 root:root /w/local.txt\n644 root:root /etc/local.txt\nfirst version\n"
	if r := s.docker(t, dockerCLI, nil, "run", "--rm", "fetched:v1"); r.stdout != want {
		t.Errorf("run: %q, want %q (%s)", r.stdout, want, r.stderr)
	}
	if r := build("-t", "fetched:v1", dir); strings.Count(r.stdout, "Using cache") != 7 {
		t.Errorf("unchanged URL content must be cached: %+v", r)
	}
	mu.Lock()
	body = "second version\n"
	mu.Unlock()
	if r := build("-t", "fetched:v1", dir); r.code != 0 || strings.Count(r.stdout, "Using cache") != 0 {
		t.Errorf("changed URL content must rebuild from the ADD: %+v", r)
	}
	if r := s.docker(t, dockerCLI, nil, "run", "--rm", "fetched:v1"); !strings.HasSuffix(r.stdout, "second version\n") {
		t.Errorf("after the change: %q", r.stdout)
	}
	if r := build("-f", filepath.Join(dir, "Dockerfile.missing"), dir); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "404") {
		t.Errorf("ADD of a missing URL: %+v", r)
	}
	if r := build("-f", filepath.Join(dir, "Dockerfile.badchown"), dir); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "nosuchuser") {
		t.Errorf("--chown of an unknown user: %+v", r)
	}
}

// TestBuildShellAndOnBuild: SHELL changes how shell-form RUN, CMD and
// ENTRYPOINT run; a FROM image's ONBUILD triggers run right after the
// FROM of a build on it, once.
func TestBuildShellAndOnBuild(t *testing.T) {
	s := startServer(t)
	needCLI(t, dockerCLI)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "local.txt"), []byte("from the child's context\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.base"), []byte(`FROM busybox
ONBUILD RUN echo triggered > /trig
ONBUILD COPY local.txt /from-trigger.txt
`), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.child"), []byte(`FROM onbase:v1
SHELL ["/bin/sh", "-ec"]
RUN test -f /trig && echo "shell $0" > /shell.txt
CMD cat /trig /from-trigger.txt /shell.txt
`), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile.bad"), []byte("FROM busybox\nONBUILD FROM busybox\n"), 0o644)
	build := func(args ...string) result {
		t.Helper()
		return s.dockerEnv(t, dockerCLI, []string{"DOCKER_BUILDKIT=0"}, append([]string{"build"}, args...)...)
	}
	if r := build("-f", filepath.Join(dir, "Dockerfile.base"), "-t", "onbase:v1", dir); r.code != 0 {
		t.Fatalf("base: %+v", r)
	}
	r := build("-f", filepath.Join(dir, "Dockerfile.child"), "-t", "onchild:v1", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "# Executing 2 build triggers") {
		t.Fatalf("child: %+v", r)
	}
	if r := s.docker(t, dockerCLI, nil, "run", "--rm", "onchild:v1"); r.stdout != "triggered\nfrom the child's context\nshell /bin/sh\n" {
		t.Errorf("run: %+v", r)
	}
	if r := s.docker(t, dockerCLI, nil, "inspect", "--format", "{{json .Config.OnBuild}} {{json .Config.Cmd}}", "onchild:v1"); r.stdout != `null ["/bin/sh","-ec","cat /trig /from-trigger.txt /shell.txt"]`+"\n" {
		t.Errorf("child config: %q", r.stdout)
	}
	if r := build("-f", filepath.Join(dir, "Dockerfile.bad"), dir); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "not allowed as an ONBUILD trigger") {
		t.Errorf("ONBUILD FROM: %+v", r)
	}
}
