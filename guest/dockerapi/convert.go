package dockerapi

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/vmbox/vmbox/guest/api"
)

// createConfig turns a container create request into the engine's
// configuration. Settings the engine cannot honour are refused (an error
// the handler answers with 400) rather than silently dropped.
func createConfig(name string, req container.CreateRequest) (api.ContainerConfig, error) {
	if req.Config == nil {
		return api.ContainerConfig{}, fmt.Errorf("config cannot be empty in order to create a container")
	}
	c := req.Config
	cfg := api.ContainerConfig{
		Image:      c.Image,
		Name:       name,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		Hostname:   c.Hostname,
		Domainname: c.Domainname,
		Tty:        c.Tty,
		OpenStdin:  c.OpenStdin,
		Labels:     c.Labels,
		// The API never pulls at create: a missing image answers 404 and
		// the client pulls (POST /images/create) and creates again.
		Pull: "never",
	}
	if c.Entrypoint != nil {
		cfg.EntrypointSet = true
		// The CLI's --entrypoint "" arrives as [""]: no entrypoint.
		if !(len(c.Entrypoint) == 1 && c.Entrypoint[0] == "") {
			cfg.Entrypoint = c.Entrypoint
		}
	}
	for p := range c.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p.String())
	}
	for _, p := range slices.Sorted(maps.Keys(c.Volumes)) {
		cfg.Mounts = append(cfg.Mounts, api.Mount{Type: api.MountVolume, Target: p})
	}
	sort.Strings(cfg.ExposedPorts)
	if h := req.HostConfig; h != nil {
		if err := applyHostConfig(&cfg, h); err != nil {
			return api.ContainerConfig{}, err
		}
	}
	if nc := req.NetworkingConfig; nc != nil {
		for netName, ep := range nc.EndpointsConfig {
			if ep == nil {
				continue
			}
			if cfg.NetworkMode == "" || cfg.NetworkMode == "default" {
				cfg.NetworkMode = netName
			}
			if netName == cfg.NetworkMode {
				cfg.NetworkAliases = append(cfg.NetworkAliases, ep.Aliases...)
			}
		}
	}
	if cfg.NetworkMode == "default" {
		cfg.NetworkMode = ""
	}
	return cfg, nil
}

func applyHostConfig(cfg *api.ContainerConfig, h *container.HostConfig) error {
	for _, b := range h.Binds {
		// A docker CLI on Windows sends its drive paths as they are.
		m, err := api.ParseVolumeSpec(api.WindowsVolumeSpec(b))
		if err != nil {
			return err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	for _, m := range h.Mounts {
		am := api.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		switch m.Type {
		case "volume":
			if o := m.VolumeOptions; o != nil {
				am.NoCopy = o.NoCopy
				if o.Subpath != "" || o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" {
					return fmt.Errorf("volume subpaths and drivers are not supported")
				}
			}
		case "bind":
		case "tmpfs":
			var opts []string
			if o := m.TmpfsOptions; o != nil {
				if o.SizeBytes > 0 {
					opts = append(opts, "size="+strconv.FormatInt(o.SizeBytes, 10))
				}
				if o.Mode != 0 {
					// Clients send the octal mode's bits as they are (1777 is
					// 0o1777, not os.ModeSticky), as Docker formats them.
					opts = append(opts, "mode="+strconv.FormatUint(uint64(o.Mode)&0o7777, 8))
				}
			}
			am.TmpfsOptions = strings.Join(opts, ",")
		default:
			return fmt.Errorf("mounts of type %q are not supported", m.Type)
		}
		cfg.Mounts = append(cfg.Mounts, am)
	}
	cfg.VolumesFrom = h.VolumesFrom
	for path, opts := range h.Tmpfs {
		if cfg.Tmpfs == nil {
			cfg.Tmpfs = map[string]string{}
		}
		cfg.Tmpfs[path] = opts
	}
	cfg.AutoRemove = h.AutoRemove
	cfg.Memory = h.Memory
	cfg.NanoCPUs = h.NanoCPUs
	if cfg.NanoCPUs == 0 && h.CPUQuota > 0 {
		period := h.CPUPeriod
		if period == 0 {
			period = 100000
		}
		cfg.NanoCPUs = h.CPUQuota * 1e9 / period
	}
	if h.PidsLimit != nil && *h.PidsLimit > 0 {
		cfg.PidsLimit = *h.PidsLimit
	}
	cfg.NetworkMode = string(h.NetworkMode)
	cfg.PublishAllPorts = h.PublishAllPorts
	cfg.ExtraHosts = h.ExtraHosts
	for _, a := range h.DNS {
		cfg.DNS = append(cfg.DNS, a.String())
	}
	cfg.DNSSearch = h.DNSSearch
	cfg.DNSOptions = h.DNSOptions
	cfg.Privileged = h.Privileged
	cfg.ReadOnly = h.ReadonlyRootfs
	cfg.ConsoleSize = h.ConsoleSize
	cfg.RestartPolicy = api.RestartPolicy{Name: string(h.RestartPolicy.Name), MaximumRetryCount: h.RestartPolicy.MaximumRetryCount}
	if cfg.RestartPolicy.Name == api.RestartNo {
		cfg.RestartPolicy = api.RestartPolicy{}
	}
	for port, bindings := range h.PortBindings {
		proto := string(port.Proto())
		if proto != "tcp" && proto != "udp" {
			return fmt.Errorf("publishing %s ports is not supported: only tcp and udp", proto)
		}
		if len(bindings) == 0 {
			bindings = []network.PortBinding{{}}
		}
		for _, b := range bindings {
			pb := api.PortBinding{ContainerPort: port.Num(), Proto: proto}
			if b.HostIP.IsValid() {
				pb.HostIP = b.HostIP.String()
			}
			if b.HostPort != "" {
				n, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err != nil {
					return fmt.Errorf("invalid host port %q for %s", b.HostPort, port)
				}
				pb.HostPort = uint16(n)
			}
			cfg.PortBindings = append(cfg.PortBindings, pb)
		}
	}
	sort.Slice(cfg.PortBindings, func(i, j int) bool {
		a, b := cfg.PortBindings[i], cfg.PortBindings[j]
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		return a.Proto < b.Proto
	})
	return nil
}

// inspectResponse is Docker's view of a container.
func inspectResponse(c api.ContainerInspect) container.InspectResponse {
	cfg := c.Config
	out := container.InspectResponse{
		ID:             c.ID,
		Created:        c.Created.UTC().Format(time.RFC3339Nano),
		Path:           c.Path,
		Args:           nonNil(c.Args),
		Image:          c.Image,
		ResolvConfPath: c.ResolvConfPath,
		HostnamePath:   c.HostnamePath,
		HostsPath:      c.HostsPath,
		LogPath:        c.LogPath,
		Name:           c.Name,
		RestartCount:   c.RestartCount,
		Driver:         "overlay",
		Platform:       "linux",
		Mounts:         mountPoints(c.Mounts),
		State: &container.State{
			Status:     container.ContainerState(c.State.Status),
			Running:    c.State.Running,
			Paused:     c.State.Paused,
			Restarting: c.State.Restarting,
			OOMKilled:  c.State.OOMKilled,
			Pid:        c.State.Pid,
			ExitCode:   c.State.ExitCode,
			Error:      c.State.Error,
			StartedAt:  apiTime(c.State.StartedAt),
			FinishedAt: apiTime(c.State.FinishedAt),
		},
		Config: &container.Config{
			Hostname:     cfg.Hostname,
			Domainname:   cfg.Domainname,
			User:         cfg.User,
			AttachStdout: true,
			AttachStderr: true,
			AttachStdin:  cfg.OpenStdin,
			ExposedPorts: network.PortSet{},
			Tty:          cfg.Tty,
			OpenStdin:    cfg.OpenStdin,
			StdinOnce:    cfg.OpenStdin,
			Env:          nonNil(cfg.Env),
			Cmd:          cfg.Cmd,
			Image:        cfg.Image,
			WorkingDir:   cfg.WorkingDir,
			Entrypoint:   cfg.Entrypoint,
			Labels:       nonNilMap(cfg.Labels),
		},
		HostConfig: hostConfig(cfg),
		NetworkSettings: &container.NetworkSettings{
			SandboxKey: c.NetworkSettings.SandboxKey,
			Ports:      network.PortMap{},
			Networks:   map[string]*network.EndpointSettings{},
		},
	}
	for _, p := range cfg.ExposedPorts {
		if port, err := network.ParsePort(p); err == nil {
			out.Config.ExposedPorts[port] = struct{}{}
		}
	}
	for key, maps := range c.NetworkSettings.Ports {
		port, err := network.ParsePort(key)
		if err != nil {
			continue
		}
		out.Config.ExposedPorts[port] = struct{}{}
		var bs []network.PortBinding
		for _, m := range maps {
			b := network.PortBinding{HostPort: m.HostPort}
			b.HostIP, _ = netip.ParseAddr(m.HostIP)
			bs = append(bs, b)
		}
		out.NetworkSettings.Ports[port] = bs
	}
	for name, ep := range c.NetworkSettings.Networks {
		// On user networks the short ID is a name peers resolve, and
		// Docker 20.10 lists it among the aliases: Compose 1.29 checks it
		// to know a container is already set up on its network.
		if name != network.NetworkBridge && len(c.ID) >= 12 && !slices.Contains(ep.Aliases, c.ID[:12]) {
			ep.Aliases = append(slices.Clone(ep.Aliases), c.ID[:12])
		}
		out.NetworkSettings.Networks[name] = endpointSettings(ep)
	}
	return out
}

func hostConfig(cfg api.ContainerConfig) *container.HostConfig {
	h := &container.HostConfig{
		NetworkMode:     container.NetworkMode(cfg.NetworkMode),
		PortBindings:    network.PortMap{},
		RestartPolicy:   container.RestartPolicy{Name: container.RestartPolicyMode(cfg.RestartPolicy.Name), MaximumRetryCount: cfg.RestartPolicy.MaximumRetryCount},
		AutoRemove:      cfg.AutoRemove,
		ConsoleSize:     cfg.ConsoleSize,
		ExtraHosts:      cfg.ExtraHosts,
		DNSOptions:      cfg.DNSOptions,
		DNSSearch:       cfg.DNSSearch,
		Privileged:      cfg.Privileged,
		PublishAllPorts: cfg.PublishAllPorts,
		ReadonlyRootfs:  cfg.ReadOnly,
		Tmpfs:           cfg.Tmpfs,
		LogConfig:       container.LogConfig{Type: "json-file", Config: map[string]string{}},
		Resources:       container.Resources{Memory: cfg.Memory, NanoCPUs: cfg.NanoCPUs},
	}
	if h.NetworkMode == "" {
		h.NetworkMode = network.NetworkBridge
	}
	if h.RestartPolicy.Name == "" {
		h.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if cfg.PidsLimit > 0 {
		h.PidsLimit = &cfg.PidsLimit
	}
	for _, d := range cfg.DNS {
		if a, err := netip.ParseAddr(d); err == nil {
			h.DNS = append(h.DNS, a)
		}
	}
	for _, b := range cfg.PortBindings {
		port, err := network.ParsePort(b.Key())
		if err != nil {
			continue
		}
		pb := network.PortBinding{}
		if b.HostPort != 0 {
			pb.HostPort = strconv.Itoa(int(b.HostPort))
		}
		pb.HostIP, _ = netip.ParseAddr(b.HostIP)
		h.PortBindings[port] = append(h.PortBindings[port], pb)
	}
	return h
}

func endpointSettings(ep api.EndpointSettings) *network.EndpointSettings {
	out := &network.EndpointSettings{
		Aliases:     ep.Aliases,
		NetworkID:   ep.NetworkID,
		EndpointID:  ep.EndpointID,
		IPPrefixLen: ep.IPPrefixLen,
		DNSNames:    ep.DNSNames,
	}
	out.Gateway, _ = netip.ParseAddr(ep.Gateway)
	out.IPAddress, _ = netip.ParseAddr(ep.IPAddress)
	if mac, err := net.ParseMAC(ep.MacAddress); err == nil {
		out.MacAddress = network.HardwareAddr(mac)
	}
	return out
}

// summary is Docker's row of GET /containers/json.
func summary(c api.ContainerSummary) container.Summary {
	out := container.Summary{
		ID:      c.ID,
		Names:   nonNil(c.Names),
		Image:   c.Image,
		ImageID: c.ImageID,
		Command: c.Command,
		Created: c.Created,
		Labels:  nonNilMap(c.Labels),
		State:   container.ContainerState(c.State),
		Status:  c.Status,
		Ports:   []container.PortSummary{},
		Mounts:  []container.MountPoint{},
		NetworkSettings: &container.NetworkSettingsSummary{
			Networks: map[string]*network.EndpointSettings{},
		},
	}
	for _, p := range c.Ports {
		ps := container.PortSummary{PrivatePort: p.PrivatePort, PublicPort: p.PublicPort, Type: p.Type}
		ps.IP, _ = netip.ParseAddr(p.IP)
		out.Ports = append(out.Ports, ps)
	}
	for _, n := range c.Networks {
		out.NetworkSettings.Networks[n] = &network.EndpointSettings{}
	}
	if len(c.Networks) > 0 {
		out.HostConfig.NetworkMode = c.Networks[0]
	}
	return out
}

// apiTime formats a time as Docker does: RFC 3339 with nanoseconds, and
// the zero time as "0001-01-01T00:00:00Z".
func apiTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

func mountPoints(ms []api.VolumeMountPoint) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range ms {
		out = append(out, container.MountPoint{
			Type: mount.Type(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination,
			Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: mount.Propagation(m.Propagation),
		})
	}
	return out
}
