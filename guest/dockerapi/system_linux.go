package dockerapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
)

// ping answers GET and HEAD /_ping: the headers carry the negotiation.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	// The classic builder's protocol; BuildKit's session is not served.
	h.Set("Builder-Version", "1")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write([]byte("OK"))
	return err
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := s.opts.Version
	details := map[string]string{
		"ApiVersion":    APIVersion,
		"MinAPIVersion": MinAPIVersion,
		"GitCommit":     v.GitCommit,
		"GoVersion":     v.GoVersion,
		"Os":            v.Os,
		"Arch":          v.Arch,
		"KernelVersion": v.KernelVersion,
		"BuildTime":     v.BuildTime,
		"Experimental":  "false",
	}
	return writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "vmbox " + v.Version},
		Components:    []system.ComponentVersion{{Name: "Engine", Version: v.Version, Details: details}},
		Version:       v.Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GitCommit:     v.GitCommit,
		GoVersion:     v.GoVersion,
		Os:            v.Os,
		Arch:          v.Arch,
		KernelVersion: v.KernelVersion,
		BuildTime:     v.BuildTime,
	})
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	v := s.opts.Version
	cs, err := s.eng.List(api.PsArgs{All: true})
	if err != nil {
		return err
	}
	imgs, err := s.imgs.List()
	if err != nil {
		return err
	}
	info := system.Info{
		ID:                 engineID(v.Hostname, s.opts.DataRoot),
		Containers:         len(cs),
		Images:             len(imgs),
		Driver:             "overlay",
		DriverStatus:       [][2]string{},
		Plugins:            system.PluginsInfo{Volume: []string{}, Network: []string{"bridge", "host", "null"}, Log: []string{"json-file"}},
		MemoryLimit:        true,
		SwapLimit:          true,
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		CPUSet:             true,
		PidsLimit:          true,
		IPv4Forwarding:     true,
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      cgroupVersion(),
		KernelVersion:      v.KernelVersion,
		OperatingSystem:    "vmbox " + v.Version,
		OSVersion:          v.Version,
		OSType:             "linux",
		Architecture:       unameMachine(),
		IndexServerAddress: "https://index.docker.io/v1/",
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		DockerRootDir:      s.opts.DataRoot,
		Name:               v.Hostname,
		Labels:             []string{},
		ServerVersion:      v.Version,
		Runtimes:           map[string]system.RuntimeWithStatus{"vmbox": {Runtime: system.Runtime{Path: "vmbox-agent"}}},
		DefaultRuntime:     "vmbox",
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		SecurityOptions:    []string{"name=seccomp,profile=unconfined"},
		Warnings:           []string{},
	}
	for _, c := range cs {
		switch c.State {
		case "running", "restarting":
			info.ContainersRunning++
		case "paused":
			info.ContainersPaused++
		default:
			info.ContainersStopped++
		}
	}
	return writeJSON(w, http.StatusOK, info)
}

// systemDF answers GET /system/df: images and containers; volumes and
// the build cache are empty until the engine has them.
func (s *Server) systemDF(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.imgs.List()
	if err != nil {
		return err
	}
	cs, err := s.eng.List(api.PsArgs{All: true})
	if err != nil {
		return err
	}
	used := map[string]int64{}
	for _, c := range cs {
		used[c.ImageID]++
	}
	df := diskUsage{Images: []image.Summary{}, Containers: []container.Summary{}, Volumes: []volume.Volume{}, BuildCache: []buildCacheRecord{}}
	for _, c := range s.imgs.BuildCache(s.eng.InUse) {
		df.BuildCache = append(df.BuildCache, buildCacheRecord{ID: strings.TrimPrefix(c.ID, "sha256:")[:12], Type: "regular", InUse: c.InUse, Size: c.Size, CreatedAt: c.Created})
	}
	vols, err := s.eng.VolumeList(nil)
	if err != nil {
		return err
	}
	usage, err := s.eng.VolumeUsage()
	if err != nil {
		return err
	}
	for _, v := range vols {
		vr := volumeResponse(v)
		vr.UsageData = &volume.UsageData{RefCount: int64(usage[v.Name].Refs), Size: usage[v.Name].Size}
		df.Volumes = append(df.Volumes, vr)
	}
	for _, im := range imgs {
		sum := imageSummary(im)
		sum.Containers = used[im.ID]
		df.Images = append(df.Images, sum)
		df.LayersSize += im.Size
	}
	for _, c := range cs {
		df.Containers = append(df.Containers, summary(c))
	}
	return writeJSON(w, http.StatusOK, df)
}

// diskUsage is /system/df in the shape API clients up to 1.51 read.
type diskUsage struct {
	LayersSize int64
	Images     []image.Summary
	Containers []container.Summary
	Volumes    []volume.Volume
	BuildCache []buildCacheRecord
}

// buildCacheRecord is a build cache entry as /system/df lists it.
type buildCacheRecord struct {
	ID         string
	Type       string
	InUse      bool
	Shared     bool
	Size       int64
	CreatedAt  time.Time
	LastUsedAt *time.Time
	UsageCount int
}

func cgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "2"
	}
	return "1"
}

func unameMachine() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func memTotal() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// engineID is a stable identifier of this engine, as info's ID is.
func engineID(hostname, root string) string {
	b, err := os.ReadFile("/etc/machine-id")
	seed := strings.TrimSpace(string(b))
	if err != nil || seed == "" {
		seed = hostname
	}
	sum := sha256.Sum256([]byte(seed + "\x00" + root))
	return hex.EncodeToString(sum[:16])
}
