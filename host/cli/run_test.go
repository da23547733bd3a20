package cli

import (
	"errors"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
)

func TestRunRestartFlag(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    api.RestartPolicy
		wantErr string
	}{
		{args: nil, want: api.RestartPolicy{}},
		{args: []string{"--restart", "no"}, want: api.RestartPolicy{}},
		{args: []string{"--restart", "always"}, want: api.RestartPolicy{Name: "always"}},
		{args: []string{"--restart", "on-failure:3"}, want: api.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
		{args: []string{"--restart", "sometimes"}, wantErr: "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{args: []string{"--restart", "unless-stopped", "--rm"}, wantErr: "Conflicting options: --restart and --rm"},
		{args: []string{"--rm", "--restart", "no"}, want: api.RestartPolicy{}},
	} {
		cfg, err := runConfig(t, append(tt.args, "busybox")...)
		if tt.wantErr != "" {
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || ee.Message != tt.wantErr {
				t.Errorf("%q: err = %v, want exit 125 with %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.RestartPolicy != tt.want {
			t.Errorf("%q: policy %+v, %v; want %+v", tt.args, cfg.RestartPolicy, err, tt.want)
		}
	}
}

func TestRunLabels(t *testing.T) {
	file := t.TempDir() + "/labels"
	if err := os.WriteFile(file, []byte("# comment\napp=web\n\ntier=front\nflag\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := runConfig(t, "--label-file", file, "-l", "tier=back", "--label", "owner=me", "busybox")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"app": "web", "tier": "back", "flag": "", "owner": "me"}
	if !maps.Equal(cfg.Labels, want) {
		t.Errorf("labels %v, want %v", cfg.Labels, want)
	}
	if _, err := runConfig(t, "--label", "=x", "busybox"); err == nil {
		t.Error("a label without a key was accepted")
	}
	if _, err := runConfig(t, "--label-file", file+".missing", "busybox"); err == nil {
		t.Error("a missing label file was accepted")
	}
}

func TestRunTmpfs(t *testing.T) {
	cfg, err := runConfig(t, "--tmpfs", "/run", "--tmpfs", "/cache:size=8m,mode=700", "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"/run": "", "/cache": "size=8m,mode=700"}; !maps.Equal(cfg.Tmpfs, want) {
		t.Errorf("tmpfs %v, want %v", cfg.Tmpfs, want)
	}
	if _, err := runConfig(t, "--tmpfs", "cache", "busybox"); err == nil {
		t.Error("a relative --tmpfs path was accepted")
	}
}

func TestRunMounts(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    []api.Mount
		from    []string
		wantErr string
	}{
		{args: []string{"-v", "db:/var/lib/db", "-v", "/cache"}, want: []api.Mount{
			{Type: api.MountVolume, Source: "db", Target: "/var/lib/db"}, {Type: api.MountVolume, Target: "/cache"}}},
		{args: []string{"--mount", "type=tmpfs,target=/run,tmpfs-size=1m", "--volumes-from", "other:ro"},
			want: []api.Mount{{Type: api.MountTmpfs, Target: "/run", TmpfsOptions: "size=1m"}}, from: []string{"other:ro"}},
		{args: []string{"-v", "/home/me/src:/app:ro"}, want: []api.Mount{
			{Type: api.MountBind, Source: "/home/me/src", Target: "/app", ReadOnly: true, CreateSource: true}}},
		{args: []string{"-v", "/var/run/docker.sock:/var/run/docker.sock"}, want: []api.Mount{
			{Type: api.MountBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock", CreateSource: true}}},
		{args: []string{"--mount", "type=bind,source=/srv,target=/srv"}, want: []api.Mount{
			{Type: api.MountBind, Source: "/srv", Target: "/srv"}}},
		{args: []string{"-v", "db:relative"}, wantErr: "must be absolute"},
	} {
		cfg, err := runConfig(t, append(tt.args, "busybox")...)
		if tt.wantErr != "" {
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Code != api.ExitEngineError || !strings.Contains(ee.Message, tt.wantErr) {
				t.Errorf("%q: err = %v, want exit 125 with %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(cfg.Mounts, tt.want) || !reflect.DeepEqual(cfg.VolumesFrom, tt.from) {
			t.Errorf("%q: mounts %+v from %v, %v; want %+v %v", tt.args, cfg.Mounts, cfg.VolumesFrom, err, tt.want, tt.from)
		}
	}
}

func TestCheckBinds(t *testing.T) {
	t.Setenv("VMBOX_HOME", t.TempDir())
	t.Setenv("HOME", "/home/me")
	t.Setenv("TMPDIR", "/tmp")
	a := &app{name: "default"}
	for _, c := range []struct {
		source string
		ok     bool
	}{
		{"/home/me/src", true}, {"/tmp/x", true}, {api.DockerSocket, true},
		{"/srv/data", false}, {"/home/other", false},
	} {
		err := a.checkBinds(api.ContainerConfig{Mounts: []api.Mount{{Type: api.MountBind, Source: c.source, Target: "/x"}}})
		var ee *ExitError
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.source, err)
		case !c.ok && (!errors.As(err, &ee) || ee.Code != api.ExitEngineError || !strings.Contains(ee.Message, "--mount")):
			t.Errorf("%s: err = %v, want exit 125 naming --mount", c.source, err)
		}
	}
}
