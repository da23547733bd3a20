package dockerctx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// dockerCLI is the real docker CLI, which must read what Ensure writes.
func dockerCLI(t *testing.T) string {
	t.Helper()
	p := "/usr/local/bin/docker"
	if _, err := os.Stat(p); err != nil {
		if p, err = exec.LookPath("docker"); err != nil {
			t.Skip("the docker CLI is not installed")
		}
	}
	return p
}

// docker runs the docker CLI on the configuration in dir, with a home of
// its own so that nothing of the machine's leaks in.
func docker(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(dockerCLI(t), append([]string{"--config", dir}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG=", "DOCKER_HOST=", "DOCKER_CONTEXT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func TestEnsureMatchesDockerCLI(t *testing.T) {
	dockerCLI(t)
	c := Context{Name: "vmbox", Description: "vmbox instance default", Host: "unix:///tmp/vmbox-test/default/docker.sock"}
	theirs := t.TempDir()
	docker(t, theirs, "context", "create", c.Name, "--description", c.Description, "--docker", "host="+c.Host)
	ours := t.TempDir()
	created, host, err := Ensure(ours, c)
	if err != nil || !created || host != c.Host {
		t.Fatalf("Ensure = %v, %q, %v", created, host, err)
	}
	want, err := os.ReadFile(metaPath(theirs, c.Name))
	if err != nil {
		t.Fatalf("the docker CLI wrote its context elsewhere: %v", err)
	}
	got, err := os.ReadFile(metaPath(ours, c.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("meta.json\n got %s\nwant %s", got, want)
	}
}

func TestEnsureReadByDockerCLI(t *testing.T) {
	dockerCLI(t)
	if runtime.GOOS == "windows" {
		t.Skip("the fake engine listens on a Unix socket")
	}
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	fakeEngine(t, sock)
	c := Context{Name: "vmbox-dev", Description: "vmbox instance dev", Host: "unix://" + sock}
	if created, _, err := Ensure(dir, c); err != nil || !created {
		t.Fatalf("Ensure = %v, %v", created, err)
	}

	var inspected []struct {
		Name      string
		Metadata  struct{ Description string }
		Endpoints map[string]struct{ Host string }
	}
	if err := json.Unmarshal([]byte(docker(t, dir, "context", "inspect", c.Name)), &inspected); err != nil {
		t.Fatal(err)
	}
	if len(inspected) != 1 || inspected[0].Name != c.Name || inspected[0].Metadata.Description != c.Description || inspected[0].Endpoints["docker"].Host != c.Host {
		t.Errorf("docker context inspect: %+v", inspected)
	}
	// The context works, and is not the current one.
	if v := docker(t, dir, "--context", c.Name, "version", "--format", "{{.Server.Version}}"); v != "fake-engine\n" {
		t.Errorf("docker --context %s version: %q", c.Name, v)
	}
	if cur := docker(t, dir, "context", "show"); cur != "default\n" {
		t.Errorf("current context %q, want default", cur)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); !os.IsNotExist(err) {
		t.Errorf("config.json written: %v", err)
	}
}

// TestEnsureLeavesExisting: a context of the name, whatever it holds, is
// the user's; Ensure reports it and changes nothing, the current context
// included.
func TestEnsureLeavesExisting(t *testing.T) {
	c := Context{Name: "vmbox", Description: "vmbox instance default", Host: "unix:///home/u/.vmbox/default/docker.sock"}
	for _, tc := range []struct {
		name     string
		existing string // meta.json as found
		wantHost string
		wantErr  bool
	}{
		{name: "same endpoint", existing: `{"Name":"vmbox","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///home/u/.vmbox/default/docker.sock","SkipTLSVerify":false}}}`,
			wantHost: c.Host},
		{name: "another endpoint", existing: `{"Name":"vmbox","Metadata":{"Description":"mine"},"Endpoints":{"docker":{"Host":"tcp://10.0.0.2:2376","SkipTLSVerify":false}}}`,
			wantHost: "tcp://10.0.0.2:2376"},
		{name: "no docker endpoint", existing: `{"Name":"vmbox","Metadata":{},"Endpoints":{}}`},
		{name: "unreadable", existing: `{"Name":`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := metaPath(dir, c.Name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.existing), 0o644); err != nil {
				t.Fatal(err)
			}
			config := []byte(`{"currentContext":"other"}`)
			if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o600); err != nil {
				t.Fatal(err)
			}
			created, host, err := Ensure(dir, c)
			if created || (err != nil) != tc.wantErr || host != tc.wantHost {
				t.Errorf("Ensure = %v, %q, %v; want not created, %q, error %v", created, host, err, tc.wantHost, tc.wantErr)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.existing {
				t.Errorf("meta.json changed to %s", b)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(b, config) {
				t.Errorf("config.json changed to %s", b)
			}
		})
	}
}

func TestConfigDir(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "/etc/dockercfg")
	if d, err := ConfigDir(); err != nil || d != "/etc/dockercfg" {
		t.Errorf("with DOCKER_CONFIG: %q, %v", d, err)
	}
	t.Setenv("DOCKER_CONFIG", "")
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	if d, err := ConfigDir(); err != nil || d != filepath.Join(home, ".docker") {
		t.Errorf("without DOCKER_CONFIG: %q, %v", d, err)
	}
}

// fakeEngine answers the two requests `docker version` makes, on a Unix
// socket at path, until the test ends.
func fakeEngine(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.47")
		w.Header().Set("Ostype", "linux")
		io.WriteString(w, "OK")
	})
	mux.HandleFunc("/{version}/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"Version": "fake-engine", "ApiVersion": "1.47", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// TestRemove: only the context vmbox added (its endpoint is the
// instance's) goes, and not while it is the current one; a missing one is
// no error.
func TestRemove(t *testing.T) {
	ours := Context{Name: "vmbox", Description: "vmbox instance default", Host: "unix:///home/u/.vmbox/default/docker.sock"}
	for _, tc := range []struct {
		name        string
		existing    *Context // nil: none in the store
		current     string   // config.json's currentContext; "-" for no config.json
		env         string   // DOCKER_CONTEXT
		wantRemoved bool
		wantErr     error
	}{
		{name: "ours", existing: &ours, current: "-", wantRemoved: true},
		{name: "ours, another current", existing: &ours, current: "default", wantRemoved: true},
		{name: "ours but current", existing: &ours, current: "vmbox", wantErr: ErrCurrent},
		{name: "ours but current by DOCKER_CONTEXT", existing: &ours, current: "-", env: "vmbox", wantErr: ErrCurrent},
		{name: "ours, DOCKER_CONTEXT another", existing: &ours, current: "vmbox", env: "default", wantRemoved: true},
		{name: "the user's", existing: &Context{Name: "vmbox", Host: "tcp://10.0.0.2:2376"}, current: "-"},
		{name: "none", current: "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONTEXT", tc.env)
			dir := t.TempDir()
			if tc.existing != nil {
				if _, _, err := Ensure(dir, *tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if tc.current != "-" {
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{},"currentContext":"`+tc.current+`"}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := Remove(dir, ours.Name, ours.Host)
			if removed != tc.wantRemoved || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Remove = %v, %v; want %v, %v", removed, err, tc.wantRemoved, tc.wantErr)
			}
			_, statErr := os.Stat(metaPath(dir, ours.Name))
			if gone := errors.Is(statErr, fs.ErrNotExist); gone != (tc.wantRemoved || tc.existing == nil) {
				t.Errorf("context in the store after Remove: %v", !gone)
			}
		})
	}
}

// TestRemoveSeenByDockerCLI: the docker CLI no longer lists a context
// Remove took out, and still lists the others.
func TestRemoveSeenByDockerCLI(t *testing.T) {
	dir := t.TempDir()
	ours := Context{Name: "vmbox-dev", Host: "unix:///home/u/.vmbox/dev/docker.sock"}
	other := Context{Name: "vmbox", Host: "unix:///home/u/.vmbox/default/docker.sock"}
	for _, c := range []Context{ours, other} {
		if _, _, err := Ensure(dir, c); err != nil {
			t.Fatal(err)
		}
	}
	if removed, err := Remove(dir, ours.Name, ours.Host); !removed || err != nil {
		t.Fatalf("Remove = %v, %v", removed, err)
	}
	out := docker(t, dir, "context", "ls", "--format", "{{.Name}}")
	if strings.Contains(out, "vmbox-dev") || !strings.Contains(out, "vmbox\n") {
		t.Errorf("docker context ls after Remove:\n%s", out)
	}
}
