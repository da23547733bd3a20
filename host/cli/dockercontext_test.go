package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/host/dockerctx"
	"github.com/vmbox/vmbox/host/instance"
)

func TestDockerContextName(t *testing.T) {
	for name, want := range map[string]string{
		instance.DefaultName: "vmbox",
		"dev":                "vmbox-dev",
		"a.b_c-1":            "vmbox-a.b_c-1",
	} {
		if got := dockerContextName(name); got != want {
			t.Errorf("dockerContextName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestEnsureDockerContext: the first start says how to use the new
// context, later ones say nothing, a user's context of the name is
// reported and kept, and a store that cannot be written only warns.
func TestEnsureDockerContext(t *testing.T) {
	store := instance.Store{Root: t.TempDir()}
	inst := &instance.Instance{Dir: filepath.Join(store.Root, "default"), Config: instance.Config{Name: "default"}}
	dev := &instance.Instance{Dir: filepath.Join(store.Root, "dev"), Config: instance.Config{Name: "dev"}}
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker)
	if _, _, err := dockerctx.Ensure(docker, dockerctx.Context{Name: "vmbox-dev", Host: "tcp://10.0.0.2:2376"}); err != nil {
		t.Fatal(err)
	}
	unwritable := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(unwritable, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		inst   *instance.Instance
		config string // DOCKER_CONFIG
		want   []string
		quiet  bool
	}{
		{name: "first start", inst: inst, config: docker, want: []string{"Docker API: docker --context vmbox ", "docker context use vmbox", "DOCKER_HOST=" + inst.DockerHost()}},
		{name: "next start", inst: inst, config: docker, quiet: true},
		{name: "user's context", inst: dev, config: docker, want: []string{`docker context "vmbox-dev" already exists (tcp://10.0.0.2:2376), left alone`, "DOCKER_HOST=" + dev.DockerHost()}},
		{name: "unwritable store", inst: inst, config: unwritable, want: []string{`vmbox: warning: no docker context "vmbox"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tc.config)
			var stderr bytes.Buffer
			a := &app{stdout: &bytes.Buffer{}, stderr: &stderr}
			a.ensureDockerContext(tc.inst)
			out := stderr.String()
			if tc.quiet && out != "" {
				t.Errorf("said %q, want nothing", out)
			}
			if !tc.quiet && strings.Count(out, "\n") != 1 {
				t.Errorf("said %q, want one line", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("said %q, want it to contain %q", out, w)
				}
			}
		})
	}
	// The user's context is as it was.
	if created, host, err := dockerctx.Ensure(docker, dockerctx.Context{Name: "vmbox-dev"}); created || host != "tcp://10.0.0.2:2376" || err != nil {
		t.Errorf("user's context now %v, %q, %v", created, host, err)
	}
	if runtime.GOOS != "windows" && !strings.HasPrefix(inst.DockerHost(), "unix:///") {
		t.Errorf("DockerHost %q is not an absolute unix:// address", inst.DockerHost())
	}
}

// TestRemoveDockerContext: deleting an instance takes out the context its
// start added, leaves a user's context of the name, and warns in one line
// when the context is the current one.
func TestRemoveDockerContext(t *testing.T) {
	store := instance.Store{Root: t.TempDir()}
	inst := &instance.Instance{Dir: filepath.Join(store.Root, "default"), Config: instance.Config{Name: "default"}}
	dev := &instance.Instance{Dir: filepath.Join(store.Root, "dev"), Config: instance.Config{Name: "dev"}}
	for _, tc := range []struct {
		name    string
		inst    *instance.Instance
		context dockerctx.Context
		current string
		want    string // on stderr
		gone    bool
	}{
		{name: "ours", inst: inst, context: dockerctx.Context{Name: "vmbox", Host: inst.DockerHost()}, gone: true},
		{name: "the user's", inst: dev, context: dockerctx.Context{Name: "vmbox-dev", Host: "tcp://10.0.0.2:2376"}},
		{name: "current", inst: inst, context: dockerctx.Context{Name: "vmbox", Host: inst.DockerHost()}, current: "vmbox", want: `docker context "vmbox" left in place`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docker := t.TempDir()
			t.Setenv("DOCKER_CONFIG", docker)
			if _, _, err := dockerctx.Ensure(docker, tc.context); err != nil {
				t.Fatal(err)
			}
			if tc.current != "" {
				os.WriteFile(filepath.Join(docker, "config.json"), []byte(`{"currentContext":"`+tc.current+`"}`), 0o600)
			}
			var stderr bytes.Buffer
			a := &app{stdout: &bytes.Buffer{}, stderr: &stderr}
			a.removeDockerContext(tc.inst)
			if out := stderr.String(); (tc.want == "" && out != "") || !strings.Contains(out, tc.want) || strings.Count(out, "\n") > 1 {
				t.Errorf("said %q, want %q", out, tc.want)
			}
			created, _, err := dockerctx.Ensure(docker, dockerctx.Context{Name: tc.context.Name, Host: tc.context.Host})
			if err != nil {
				t.Fatal(err)
			}
			if created != tc.gone {
				t.Errorf("context removed = %v, want %v", created, tc.gone)
			}
		})
	}
}
