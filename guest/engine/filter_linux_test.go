package engine_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/engine"
)

func TestListFilters(t *testing.T) {
	e := newEngine(t, t.TempDir())
	ctx := context.Background()
	web := startDetached(t, e, api.ContainerConfig{Image: "busybox", Name: "web", Labels: map[string]string{"app": "web", "tier": "front"}, Cmd: []string{"sleep", "600"}})
	startDetached(t, e, api.ContainerConfig{Image: "busybox", Name: "db", Labels: map[string]string{"app": "db"}, Cmd: []string{"sh", "-c", "exit 3"}})
	eventually(t, e, "db", "exited", func(in api.ContainerInspect) bool { return in.State.Status == "exited" })
	if _, err := e.Create(ctx, api.ContainerConfig{Image: "vmbox-test", Name: "idle"}, engine.PullOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		args api.PsArgs
		want []string
	}{
		{"running only", api.PsArgs{}, []string{"web"}},
		{"all", api.PsArgs{All: true}, []string{"db", "idle", "web"}},
		{"label key", api.PsArgs{All: true, Filters: api.Filters{"label": {"app"}}}, []string{"db", "web"}},
		{"label key=value", api.PsArgs{All: true, Filters: api.Filters{"label": {"app=web"}}}, []string{"web"}},
		{"labels all hold", api.PsArgs{All: true, Filters: api.Filters{"label": {"app=web", "tier=back"}}}, nil},
		{"status lists stopped ones", api.PsArgs{Filters: api.Filters{"status": {"exited"}}}, []string{"db"}},
		{"statuses are alternatives", api.PsArgs{Filters: api.Filters{"status": {"exited", "created"}}}, []string{"db", "idle"}},
		{"exit code", api.PsArgs{Filters: api.Filters{"exited": {"3"}}}, []string{"db"}},
		{"name pattern", api.PsArgs{All: true, Filters: api.Filters{"name": {"^w"}}}, []string{"web"}},
		{"id prefix", api.PsArgs{All: true, Filters: api.Filters{"id": {web[:8]}}}, []string{"web"}},
		{"ancestor by name", api.PsArgs{All: true, Filters: api.Filters{"ancestor": {"busybox:latest"}}}, []string{"db", "web"}},
		{"ancestor elsewhere", api.PsArgs{All: true, Filters: api.Filters{"ancestor": {"alpine"}}}, nil},
		{"keys all hold", api.PsArgs{All: true, Filters: api.Filters{"label": {"app"}, "status": {"running"}}}, []string{"web"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := e.List(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Names[0][1:])
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	ps, _ := e.List(api.PsArgs{Filters: api.Filters{"name": {"^web$"}}})
	if len(ps) != 1 || ps[0].Labels["tier"] != "front" {
		t.Errorf("labels in the summary: %+v", ps)
	}
	for _, f := range []api.Filters{{"colour": {"red"}}, {"status": {"sleeping"}}, {"exited": {"x"}}, {"name": {"("}}} {
		if _, err := e.List(api.PsArgs{Filters: f}); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("filter %v: %v, want ErrInvalid", f, err)
		}
	}
}
