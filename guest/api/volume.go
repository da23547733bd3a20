package api

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Volume operations.
const (
	OpVolumeCreate  = "volume-create"  // VolumeCreateArgs -> Volume
	OpVolumeList    = "volume-ls"      // VolumeListArgs -> []Volume
	OpVolumeInspect = "volume-inspect" // VolumeInspectArgs -> []Volume
	OpVolumeRemove  = "volume-rm"      // VolumeRemoveArgs
	OpVolumePrune   = "volume-prune"   // VolumePruneArgs -> VolumePruneReply
)

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// Mount is one volume, bind or tmpfs mount of a container, shaped like
// Docker's HostConfig.Mounts entries.
type Mount struct {
	Type string `json:"Type"`
	// Source is the volume's name (empty: a new anonymous volume) or the
	// bind's path; empty for tmpfs.
	Source   string `json:"Source,omitempty"`
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
	// NoCopy leaves a new volume empty instead of filling it with what the
	// image has at Target.
	NoCopy bool `json:"NoCopy,omitempty"`
	// TmpfsOptions are --tmpfs options ("size=64m,mode=1777").
	TmpfsOptions string `json:"TmpfsOptions,omitempty"`
	// CreateSource makes a missing bind source as a directory, as Docker
	// does for -v (and not for --mount).
	CreateSource bool `json:"CreateSource,omitempty"`
}

// ParseVolumeSpec reads a -v value: NAME:CTRPATH[:OPTS] (a named volume),
// /HOSTPATH:CTRPATH[:OPTS] (a bind mount) or CTRPATH (an anonymous
// volume). OPTS are comma-separated: ro, rw, nocopy (and the SELinux and
// propagation words Docker accepts, which change nothing here).
func ParseVolumeSpec(spec string) (Mount, error) {
	parts := strings.Split(spec, ":")
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("invalid volume specification %q: %s", spec, why)
	}
	var m Mount
	switch len(parts) {
	case 1:
		m = Mount{Type: MountVolume, Target: parts[0]}
	case 2, 3:
		m = Mount{Source: parts[0], Target: parts[1]}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "delegated", "cached", "consistent":
				case "nocopy":
					m.NoCopy = true
				default:
					return bad("unknown option " + o)
				}
			}
		}
		switch {
		case m.Source == "":
			return bad("empty source")
		case strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, "."):
			m.Type = MountBind
			m.CreateSource = true
		default:
			m.Type = MountVolume
			if err := CheckVolumeName(m.Source); err != nil {
				return bad(err.Error())
			}
		}
	default:
		return bad("too many colons")
	}
	if !path.IsAbs(m.Target) {
		return bad("the container path must be absolute")
	}
	if path.Clean(m.Target) == "/" {
		return bad("the container path cannot be /")
	}
	if m.Type == MountBind && m.NoCopy {
		return bad("nocopy is for volumes")
	}
	return m, nil
}

// ParseMountSpec reads a --mount value: type=volume|bind|tmpfs,
// source|src=..., target|destination|dst=..., readonly|ro[=true|false],
// volume-nocopy, tmpfs-size=..., tmpfs-mode=....
func ParseMountSpec(spec string) (Mount, error) {
	m := Mount{Type: MountVolume}
	var tmpfsOpts []string
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("invalid --mount %q: %s", spec, why)
	}
	for _, field := range strings.Split(spec, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		boolValue := func() (bool, error) {
			switch strings.ToLower(v) {
			case "", "1", "true":
				return true, nil
			case "0", "false":
				return false, nil
			}
			return false, fmt.Errorf("%s: want true or false, not %q", k, v)
		}
		switch strings.ToLower(k) {
		case "type":
			m.Type = v
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			b, err := boolValue()
			if err != nil {
				return bad(err.Error())
			}
			m.ReadOnly = b
		case "volume-nocopy":
			b, err := boolValue()
			if err != nil {
				return bad(err.Error())
			}
			m.NoCopy = b
		case "tmpfs-size":
			tmpfsOpts = append(tmpfsOpts, "size="+v)
		case "tmpfs-mode":
			tmpfsOpts = append(tmpfsOpts, "mode="+v)
		case "consistency", "bind-propagation", "volume-driver":
		case "volume-label", "volume-opt", "bind-nonrecursive":
			return bad(k + " is not supported")
		default:
			if !hasValue && k == "" {
				continue
			}
			return bad("unknown key " + k)
		}
	}
	switch m.Type {
	case MountVolume:
		if m.Source != "" {
			if err := CheckVolumeName(m.Source); err != nil {
				return bad(err.Error())
			}
		}
	case MountBind:
		if m.Source == "" {
			return bad("a bind mount needs a source")
		}
		if !path.IsAbs(m.Source) {
			return bad("the bind source must be an absolute path")
		}
	case MountTmpfs:
		if m.Source != "" {
			return bad("a tmpfs has no source")
		}
		m.TmpfsOptions = strings.Join(tmpfsOpts, ",")
	default:
		return bad("type must be volume, bind or tmpfs")
	}
	if m.Target == "" {
		return bad("target is required")
	}
	if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
		return bad("the target must be an absolute path other than /")
	}
	return m, nil
}

// CheckVolumeName refuses names Docker refuses: [a-zA-Z0-9][a-zA-Z0-9_.-]+.
func CheckVolumeName(name string) error {
	ok := len(name) >= 2
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '.' || r == '-'):
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", name)
	}
	return nil
}

// Volume is a volume as Docker's API shows it.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"` // "local"
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"` // "local"
	Options    map[string]string `json:"Options"`
	// Anonymous: made for one container (-v PATH, an image's VOLUME),
	// removed with it by rm -v and run --rm.
	Anonymous bool `json:"-"`
}

// VolumeCreateArgs is OpVolumeCreate. An empty name makes an anonymous
// volume; an existing name answers that volume.
type VolumeCreateArgs struct {
	Name       string            `json:"Name,omitempty"`
	Driver     string            `json:"Driver,omitempty"`
	DriverOpts map[string]string `json:"DriverOpts,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// VolumeListArgs is OpVolumeList. Filters: name, label, dangling.
type VolumeListArgs struct {
	Filters Filters `json:"filters,omitempty"`
}

// VolumeInspectArgs is OpVolumeInspect.
type VolumeInspectArgs struct {
	Names []string `json:"names"`
}

// VolumeRemoveArgs is OpVolumeRemove.
type VolumeRemoveArgs struct {
	Names []string `json:"names"`
	Force bool     `json:"force,omitempty"`
}

// VolumePruneArgs is OpVolumePrune: unused anonymous volumes, or every
// unused volume with All. Filters: label.
type VolumePruneArgs struct {
	All     bool    `json:"all,omitempty"`
	Filters Filters `json:"filters,omitempty"`
}

// VolumePruneReply answers OpVolumePrune.
type VolumePruneReply struct {
	VolumesDeleted []string `json:"VolumesDeleted"`
	SpaceReclaimed uint64   `json:"SpaceReclaimed"`
}

// VolumeMountPoint is a container's mount as inspect shows it (Docker's
// MountPoint).
type VolumeMountPoint struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}
