package engine

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/vmbox/vmbox/guest/api"
)

// List returns the containers that pass args.Filters, newest first; only
// running ones unless args.All or a status filter.
func (e *Engine) List(args api.PsArgs) ([]api.ContainerSummary, error) {
	filter, err := newContainerFilter(args.Filters)
	if err != nil {
		return nil, err
	}
	all := args.All || filter.listsStopped()
	e.mu.Lock()
	cs := make([]*managedContainer, 0, len(e.byID))
	for _, c := range e.byID {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	now := time.Now()
	out := make([]api.ContainerSummary, 0, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		rec := c.rec
		ports, networks := c.portSummaries(), c.networkNames()
		c.mu.Unlock()
		if !all && rec.State.Status != statusRunning && rec.State.Status != statusRestarting && rec.State.Status != statusPaused {
			continue
		}
		if !filter.matches(&rec, networks) {
			continue
		}
		out = append(out, api.ContainerSummary{
			ID:       rec.ID,
			Names:    []string{"/" + rec.Name},
			Image:    rec.Config.Image,
			ImageID:  rec.ImageID,
			Command:  command(rec.Path, rec.Args),
			Created:  rec.Created.Unix(),
			State:    rec.State.Status,
			Status:   statusText(rec.State, now),
			Ports:    ports,
			Networks: networks,
			Labels:   labelsOrEmpty(rec.Config.Labels),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created > out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// labelsOrEmpty is labels, or an empty map where Docker's JSON has {}.
func labelsOrEmpty(labels map[string]string) map[string]string {
	if labels == nil {
		return map[string]string{}
	}
	return labels
}

// command formats the command as Docker's list does.
func command(path string, args []string) string {
	parts := []string{path}
	for _, a := range args {
		if strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// statusText is Docker's human status: "Up 3 seconds", "Exited (3) 2
// minutes ago", "Created".
func statusText(st api.State, now time.Time) string {
	switch st.Status {
	case statusRunning:
		return "Up " + units.HumanDuration(now.Sub(st.StartedAt))
	case statusPaused:
		return "Up " + units.HumanDuration(now.Sub(st.StartedAt)) + " (Paused)"
	case statusExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	case statusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	}
	return "Created"
}

// Inspect describes a container as Docker's GET /containers/{id}/json does.
func (e *Engine) Inspect(ref string) (api.ContainerInspect, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return api.ContainerInspect{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.rec
	cfg := rec.Config
	cfg.Entrypoint, cfg.Cmd = rec.Entrypoint, rec.Cmd
	cfg.Env, cfg.WorkingDir, cfg.User, cfg.Hostname = rec.Env, rec.WorkingDir, rec.User, rec.Hostname
	return api.ContainerInspect{
		ID:      rec.ID,
		Name:    "/" + rec.Name,
		Created: rec.Created,
		Path:    rec.Path,
		Args:    append([]string{}, rec.Args...),
		State:   rec.State,
		Image:   rec.ImageID,
		Config:  cfg,
		LogPath: c.logPath(),

		RestartCount:    rec.RestartCount,
		HostnamePath:    filepath.Join(c.dir, hostnameFile),
		HostsPath:       filepath.Join(c.dir, hostsFile),
		ResolvConfPath:  filepath.Join(c.dir, resolvConfFile),
		NetworkSettings: c.networkSettings(),
		Mounts:          c.mountPoints(),
	}, nil
}

// mountPoints are the container's mounts as inspect shows them.
func (c *managedContainer) mountPoints() []api.VolumeMountPoint {
	out := []api.VolumeMountPoint{}
	for _, m := range c.rec.Mounts {
		mp := api.VolumeMountPoint{Type: m.Type, Source: m.Source, Destination: m.Target, RW: !m.ReadOnly}
		if m.ReadOnly {
			mp.Mode = "ro"
		}
		if m.Type == api.MountVolume {
			mp.Name, mp.Source, mp.Driver = m.Source, c.e.vols.dataDir(m.Source), "local"
			if mp.Mode == "" {
				mp.Mode = "z"
			}
		} else {
			mp.Propagation = "rprivate"
		}
		out = append(out, mp)
	}
	return out
}
