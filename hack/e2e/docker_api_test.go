package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The docker CLIs the API is checked with: the machine's current one and
// Debian's 20.10 (API 1.41).
var dockerCLIs = map[string]string{"cli28": "/usr/local/bin/docker", "cli20.10": "/usr/bin/docker"}

// dockerHost is the instance's Docker API endpoint, from status --format json.
func dockerHost(t *testing.T, e *env) string {
	t.Helper()
	r := e.must("status", "--format", "json")
	var st status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.DockerHost == "" {
		t.Fatalf("status --format json has no dockerHost: %v\n%s", err, r.stdout)
	}
	return st.DockerHost
}

// dockerClient runs a client program against an endpoint.
type dockerClient struct {
	t    *testing.T
	bin  string
	host string
	cfg  string // DOCKER_CONFIG: no user's contexts or credentials
}

func (d dockerClient) run(stdin string, args ...string) result {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, d.bin, args...)
	c.Env = append(os.Environ(), "DOCKER_HOST="+d.host, "DOCKER_CONFIG="+d.cfg, "DOCKER_CLI_HINTS=false")
	c.Stdin = strings.NewReader(stdin)
	var out, errb syncBuffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("%s %v: %v", d.bin, args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (d dockerClient) must(args ...string) result {
	d.t.Helper()
	r := d.run("", args...)
	if r.code != 0 {
		d.t.Fatalf("%s %v: %s", filepath.Base(d.bin), args, r)
	}
	return r
}

// dockerAPICases drive the instance through its Docker API socket with
// clients nobody here wrote: the docker CLIs, docker-compose and docker-py.
func dockerAPICases(t *testing.T, tg *target) {
	host := dockerHost(t, tg.e)
	cfg := t.TempDir()
	img := tg.reg + "/busybox"
	for name, bin := range dockerCLIs {
		t.Run("docker "+name, func(t *testing.T) {
			if _, err := os.Stat(bin); err != nil {
				t.Fatalf("%s is missing (hack/deps.sh installs Debian's docker.io)", bin)
			}
			d := dockerClient{t: t, bin: bin, host: host, cfg: cfg}
			if r := d.must("version"); !strings.Contains(r.stdout, "OS/Arch:          linux/amd64") || !strings.Contains(r.stdout, "Server: vmbox") {
				t.Errorf("version: %s", r)
			}
			if r := d.must("info", "--format", "{{.OSType}}/{{.Architecture}} {{.CgroupVersion}}"); r.stdout != "linux/x86_64 2\n" {
				t.Errorf("info: %s", r)
			}
			if r := d.must("pull", tg.reg+"/hello"); !strings.Contains(r.stdout, "Status: ") {
				t.Errorf("pull: %s", r)
			}
			if r := d.must("run", "--rm", img, "echo", "via-api"); r.stdout != "via-api\n" {
				t.Errorf("run --rm: %s", r)
			}
			for _, c := range []struct {
				args []string
				code int
			}{
				{[]string{"run", "--rm", img, "sh", "-c", "exit 3"}, 3},
				{[]string{"run", "--rm", img, "nosuchcommand"}, 127},
				{[]string{"run", "--rm", img, "/etc"}, 126},
				{[]string{"run", "--rm", "--network", "nosuchnetwork", img, "true"}, 125},
			} {
				if r := d.run("", c.args...); r.code != c.code {
					t.Errorf("%v: exit %d, want %d\n%s", c.args, r.code, c.code, r)
				}
			}
			name := "api-" + strings.ReplaceAll(name, ".", "")
			d.must("run", "-d", "--name", name, "-l", "suite=api", img, "sh", "-c", "echo up; trap 'exit 0' TERM; while :; do sleep 1; done")
			if r := d.must("exec", name, "sh", "-c", "echo exec-ok; exit 0"); r.stdout != "exec-ok\n" {
				t.Errorf("exec: %s", r)
			}
			if r := d.must("ps", "-a", "--filter", "label=suite=api", "--format", "{{.Names}}"); r.stdout != name+"\n" {
				t.Errorf("ps --filter: %s", r)
			}
			if r := d.must("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name); !strings.HasPrefix(r.stdout, name+" ") {
				t.Errorf("stats: %s", r)
			}
			if r := d.must("logs", name); r.stdout != "up\n" {
				t.Errorf("logs: %s", r)
			}
			// pause and unpause (the VM's cgroup v2 freezer).
			d.must("pause", name)
			if r := d.must("ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.Contains(r.stdout, "(Paused)") {
				t.Errorf("ps of a paused container: %s", r)
			}
			if r := d.run("", "exec", name, "true"); r.code == 0 || !strings.Contains(r.stderr, "paused") {
				t.Errorf("exec in a paused container: %s", r)
			}
			d.must("unpause", name)
			if r := d.must("inspect", "--format", "{{.State.Status}} {{.State.Paused}}", name); r.stdout != "running false\n" {
				t.Errorf("after unpause: %s", r)
			}
			// docker cp both ways.
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the host\n"), 0o644)
			d.must("cp", filepath.Join(dir, "in.txt"), name+":/tmp/in.txt")
			if r := d.must("exec", name, "cat", "/tmp/in.txt"); r.stdout != "from the host\n" {
				t.Errorf("cp in: %s", r)
			}
			d.must("exec", name, "sh", "-c", "echo from the container > /tmp/out.txt")
			d.must("cp", name+":/tmp/out.txt", filepath.Join(dir, "out.txt"))
			if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(b) != "from the container\n" {
				t.Errorf("cp out: %q %v", b, err)
			}
			d.must("stop", name)
			d.must("rm", name)
			d.must("run", "-d", "--name", name, img, "sleep", "300")
			d.must("kill", name)
			if r := d.must("wait", name); r.stdout != "137\n" {
				t.Errorf("wait after kill: %s", r)
			}
			d.must("rm", name)
			pushed := tg.reg + "/pushed/" + name + ":v1"
			d.must("tag", img, pushed)
			if r := d.must("push", pushed); !strings.Contains(r.stdout, "v1: digest: sha256:") {
				t.Errorf("push: %s", r)
			}
			d.must("rmi", pushed)
			if r := d.must("pull", pushed); !strings.Contains(r.stdout, "Downloaded newer image") {
				t.Errorf("pull of the pushed image: %s", r)
			}
			d.must("rmi", pushed)
			d.must("tag", img, "api/tagged:"+name)
			archive := d.must("save", "api/tagged:"+name).stdout
			d.must("rmi", "api/tagged:"+name)
			if r := d.run(archive, "load"); r.code != 0 || !strings.Contains(r.stdout, "Loaded image: api/tagged:"+name) {
				t.Errorf("load: %s", r)
			}
			if r := d.must("images", "--format", "{{.Repository}}:{{.Tag}}", "api/tagged"); r.stdout != "api/tagged:"+name+"\n" {
				t.Errorf("images: %s", r)
			}
			d.must("rmi", "api/tagged:"+name)
		})
	}
	// Where vmbox differs from Docker in a way clients see: -p without an
	// address publishes on loopback only (Docker: every interface).
	t.Run("differs from Docker: -p without an address binds loopback only", func(t *testing.T) {
		d := dockerClient{t: t, bin: dockerCLIs["cli28"], host: host, cfg: cfg}
		port := freeLoopbackPort(t)
		d.must("run", "-d", "--name", "api-web", "-p", fmt.Sprintf("%d:80", port), img, "sh", "-c", "mkdir -p /www && echo api-web > /www/index.html && exec httpd -f -p 80 -h /www")
		defer d.run("", "rm", "-f", "api-web")
		if got := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "api-web\n" {
			t.Errorf("served %q", got)
		}
		if r := d.must("port", "api-web", "80"); !strings.HasPrefix(r.stdout, fmt.Sprintf("127.0.0.1:%d", port)) {
			t.Errorf("docker port: %s", r)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", port), time.Second); err == nil {
			c.Close()
			t.Errorf("reachable on 127.0.0.2: the default binding is not loopback-only")
		}
	})
	t.Run("docker run -it through a terminal", func(t *testing.T) {
		cmd := exec.Command("script", "-qec", "stty cols 91 rows 33; /usr/local/bin/docker run -it --rm "+img+" sh -c 'tty; stty size; exit 5'", "/dev/null")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+cfg)
		out, err := cmd.Output()
		var ee *exec.ExitError
		// What script(1) passes on from its own stdin (closed) may echo
		// before the answers; only the answers are checked.
		if !errors.As(err, &ee) || ee.ExitCode() != 5 || !strings.Contains(string(out), "/dev/pts/0\r\n") || !strings.Contains(string(out), "33 91\r\n") {
			t.Fatalf("run -it: %v, %q", err, out)
		}
	})
	t.Run("docker-py", func(t *testing.T) {
		script := fmt.Sprintf(`
import docker
c = docker.DockerClient(base_url=%q)
ct = c.containers.create(%q, ["sh", "-c", "echo py-out; exit 7"], labels={"py": "1"})
ct.start()
assert ct.wait()["StatusCode"] == 7
assert ct.logs() == b"py-out\n", ct.logs()
assert [x.id for x in c.containers.list(all=True, filters={"label": "py=1"})] == [ct.id]
ct.remove()
print("ok")
`, host, img)
		out, err := exec.Command("python3", "-c", script).CombinedOutput()
		if err != nil || string(out) != "ok\n" {
			t.Fatalf("python3-docker: %v\n%s", err, out)
		}
	})
	t.Run("docker-compose", func(t *testing.T) {
		port := freeLoopbackPort(t)
		dir := t.TempDir()
		compose := fmt.Sprintf(`version: "2.4"
services:
  web:
    image: %[1]s
    command: ["sh", "-c", "mkdir -p /www && echo compose-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:%[2]d:80"]
    restart: always
    networks: [back]
  client:
    image: %[1]s
    command: ["sh", "-c", "until wget -qO /pages/got http://web/; do sleep 1; done; cat /pages/got; sleep 300"]
    restart: on-failure
    networks: [back]
    volumes: ["pages:/pages"]
networks:
  back: {}
volumes:
  pages: {}
`, img, port)
		if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		d := dockerClient{t: t, bin: "/usr/bin/docker-compose", host: host, cfg: cfg}
		run := func(args ...string) result {
			return d.run("", append([]string{"-p", "e2e", "--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml")}, args...)...)
		}
		if r := run("up", "-d"); r.code != 0 {
			t.Fatalf("compose up: %s", r)
		}
		if got := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "compose-ok\n" {
			t.Errorf("published port served %q", got)
		}
		cli := dockerClient{t: t, bin: "/usr/local/bin/docker", host: host, cfg: cfg}
		waitFor(t, func() bool {
			return strings.Contains(cli.must("logs", "e2e_client_1").stdout, "compose-ok")
		})
		if r := cli.must("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", "e2e_web_1"); r.stdout != "always\n" {
			t.Errorf("restart policy: %s", r)
		}
		if r := cli.must("run", "--rm", "-v", "e2e_pages:/p", img, "cat", "/p/got"); r.stdout != "compose-ok\n" {
			t.Errorf("the named volume holds %q", r.stdout)
		}
		if r := run("ps"); r.code != 0 || !strings.Contains(r.stdout, "e2e_web_1") {
			t.Errorf("compose ps: %s", r)
		}
		if r := run("down", "-v"); r.code != 0 {
			t.Fatalf("compose down: %s", r)
		}
		if r := cli.run("", "volume", "inspect", "e2e_pages"); r.code == 0 {
			t.Errorf("volume left after down -v")
		}
		if r := cli.must("ps", "-a", "--filter", "label=com.docker.compose.project=e2e", "-q"); r.stdout != "" {
			t.Errorf("containers left after down: %s", r)
		}
		if r := cli.run("", "network", "inspect", "e2e_back"); r.code == 0 {
			t.Errorf("network left after down")
		}
	})
}
