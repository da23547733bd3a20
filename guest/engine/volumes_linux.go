package engine

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/guest/container"
)

// ErrNoSuchVolume is returned (wrapped) when no volume has a name.
var ErrNoSuchVolume = errors.New("no such volume")

// volumeStore keeps volumes on the engine's disk: Root/volumes/NAME/_data
// is what containers mount, NAME/meta.json what the volume is.
type volumeStore struct {
	dir string
	mu  sync.Mutex // one change of the store at a time
}

// volumeMeta is a volume's persisted description.
type volumeMeta struct {
	Name      string            `json:"name"`
	CreatedAt time.Time         `json:"createdAt"`
	Labels    map[string]string `json:"labels,omitempty"`
	Anonymous bool              `json:"anonymous,omitempty"`
	// Populated: the volume has been mounted once, so it is never filled
	// from an image again (Docker's copy-up happens on first use only).
	Populated bool `json:"populated,omitempty"`
}

const volumeMetaFile = "meta.json"

func (v *volumeStore) dataDir(name string) string { return filepath.Join(v.dir, name, "_data") }

func (v *volumeStore) read(name string) (volumeMeta, error) {
	var m volumeMeta
	if api.CheckVolumeName(name) != nil {
		return m, fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
	}
	b, err := os.ReadFile(filepath.Join(v.dir, name, volumeMetaFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
	}
	if err != nil {
		return m, fmt.Errorf("read volume %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read volume %s: %w", name, err)
	}
	return m, nil
}

func (v *volumeStore) write(m volumeMeta) error {
	b, _ := json.Marshal(m)
	tmp := filepath.Join(v.dir, m.Name, volumeMetaFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write volume %s: %w", m.Name, err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, m.Name, volumeMetaFile)); err != nil {
		return fmt.Errorf("write volume %s: %w", m.Name, err)
	}
	return syncDir(filepath.Join(v.dir, m.Name))
}

// create makes a volume, or returns the one of that name; an empty name
// makes an anonymous volume with a random one.
func (v *volumeStore) create(name string, labels map[string]string) (volumeMeta, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	anonymous := name == ""
	if anonymous {
		b := make([]byte, 32)
		rand.Read(b)
		name = hex.EncodeToString(b)
	} else if err := api.CheckVolumeName(name); err != nil {
		return volumeMeta{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if m, err := v.read(name); err == nil {
		return m, nil
	}
	if err := os.MkdirAll(v.dataDir(name), 0o755); err != nil {
		return volumeMeta{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	m := volumeMeta{Name: name, CreatedAt: time.Now().UTC().Truncate(time.Second), Labels: labels, Anonymous: anonymous}
	if err := v.write(m); err != nil {
		os.RemoveAll(filepath.Join(v.dir, name))
		return volumeMeta{}, err
	}
	return m, nil
}

func (v *volumeStore) list() ([]volumeMeta, error) {
	ents, err := os.ReadDir(v.dir)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []volumeMeta
	for _, e := range ents {
		if m, err := v.read(e.Name()); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b volumeMeta) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// remove deletes a volume and its data: renamed away first, so that a
// crash never leaves half a volume under its name.
func (v *volumeStore) remove(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, err := v.read(name); err != nil {
		return err
	}
	trash := filepath.Join(v.dir, ".trash-"+name)
	if err := os.Rename(filepath.Join(v.dir, name), trash); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return os.RemoveAll(trash)
}

func (v *volumeStore) markPopulated(name string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, err := v.read(name)
	if err != nil || m.Populated {
		return err
	}
	m.Populated = true
	return v.write(m)
}

func (v *volumeStore) api(m volumeMeta) api.Volume {
	labels := m.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return api.Volume{Name: m.Name, Driver: "local", Mountpoint: v.dataDir(m.Name), CreatedAt: m.CreatedAt,
		Labels: labels, Scope: "local", Options: map[string]string{}, Anonymous: m.Anonymous}
}

// VolumeCreate creates a volume (or answers the existing one of that
// name, as Docker does).
func (e *Engine) VolumeCreate(args api.VolumeCreateArgs) (api.Volume, error) {
	if args.Driver != "" && args.Driver != "local" {
		return api.Volume{}, fmt.Errorf("%w: volume driver %q: only local volumes are supported", ErrInvalid, args.Driver)
	}
	if len(args.DriverOpts) > 0 {
		return api.Volume{}, fmt.Errorf("%w: volume driver options are not supported", ErrInvalid)
	}
	m, err := e.vols.create(args.Name, args.Labels)
	if err != nil {
		return api.Volume{}, err
	}
	e.events.publish(volumeEvent("create", m.Name))
	return e.vols.api(m), nil
}

// VolumeInspect describes a volume.
func (e *Engine) VolumeInspect(name string) (api.Volume, error) {
	m, err := e.vols.read(name)
	if err != nil {
		return api.Volume{}, err
	}
	return e.vols.api(m), nil
}

// VolumeList lists volumes, filtered by name (substring), label and
// dangling (used by no container).
func (e *Engine) VolumeList(f api.Filters) ([]api.Volume, error) {
	if err := f.Validate("name", "label", "dangling", "driver"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ms, err := e.vols.list()
	if err != nil {
		return nil, err
	}
	used := e.volumesInUse()
	out := []api.Volume{}
	for _, m := range ms {
		if !matchAny(f["name"], func(v string) bool { return strings.Contains(m.Name, v) }) ||
			!matchAny(f["driver"], func(v string) bool { return v == "local" }) ||
			!matchAny(f["dangling"], func(v string) bool { return (v == "true" || v == "1") == (len(used[m.Name]) == 0) }) ||
			!api.MatchLabels(m.Labels, f["label"]) {
			continue
		}
		out = append(out, e.vols.api(m))
	}
	return out, nil
}

func matchAny(vals []string, ok func(string) bool) bool {
	if len(vals) == 0 {
		return true
	}
	return slices.ContainsFunc(vals, ok)
}

// VolumeRemove removes a volume no container uses (force or not: force
// only makes a missing volume no error, as Docker's).
func (e *Engine) VolumeRemove(name string, force bool) error {
	if users := e.volumesInUse()[name]; len(users) > 0 {
		return fmt.Errorf("%w: remove %s: volume is in use - [%s]", ErrConflict, name, strings.Join(users, ", "))
	}
	err := e.vols.remove(name)
	if force && errors.Is(err, ErrNoSuchVolume) {
		return nil
	}
	if err == nil {
		e.events.publish(volumeEvent("destroy", name))
	}
	return err
}

// VolumePrune removes the volumes no container uses: anonymous ones, or
// all with all; label filters narrow it.
func (e *Engine) VolumePrune(all bool, f api.Filters) (api.VolumePruneReply, error) {
	if err := f.Validate("label", "all"); err != nil {
		return api.VolumePruneReply{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, v := range f["all"] {
		all = all || v == "true" || v == "1"
	}
	ms, err := e.vols.list()
	if err != nil {
		return api.VolumePruneReply{}, err
	}
	used := e.volumesInUse()
	out := api.VolumePruneReply{VolumesDeleted: []string{}}
	for _, m := range ms {
		if len(used[m.Name]) > 0 || (!all && !m.Anonymous) || !api.MatchLabels(m.Labels, f["label"]) {
			continue
		}
		size := dirSize(e.vols.dataDir(m.Name))
		if err := e.vols.remove(m.Name); err != nil {
			continue
		}
		e.events.publish(volumeEvent("destroy", m.Name))
		out.VolumesDeleted = append(out.VolumesDeleted, m.Name)
		out.SpaceReclaimed += uint64(size)
	}
	return out, nil
}

// VolumeUse is how much a volume is used: by how many containers, and
// the bytes it holds.
type VolumeUse struct {
	Refs int
	Size int64
}

// VolumeUsage measures every volume (system df).
func (e *Engine) VolumeUsage() (map[string]VolumeUse, error) {
	ms, err := e.vols.list()
	if err != nil {
		return nil, err
	}
	used := e.volumesInUse()
	out := map[string]VolumeUse{}
	for _, m := range ms {
		out[m.Name] = VolumeUse{Refs: len(used[m.Name]), Size: dirSize(e.vols.dataDir(m.Name))}
	}
	return out, nil
}

// volumesInUse maps volume names to the IDs of the containers (in any
// state) that mount them.
func (e *Engine) volumesInUse() map[string][]string {
	e.mu.Lock()
	cs := make([]*managedContainer, 0, len(e.byID))
	for _, c := range e.byID {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	out := map[string][]string{}
	for _, c := range cs {
		c.mu.Lock()
		for _, m := range c.rec.Mounts {
			if m.Type == api.MountVolume {
				out[m.Source] = append(out[m.Source], c.rec.ID)
			}
		}
		c.mu.Unlock()
	}
	return out
}

func volumeEvent(action, name string) Event {
	return Event{Type: "volume", Action: action, ID: name, Attributes: map[string]string{"driver": "local"}, Time: time.Now()}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// bindSource checks that a bind mount's source exists, making a missing
// one when m asks and the path is one the engine may make.
func (e *Engine) bindSource(m api.Mount) error {
	_, err := os.Stat(m.Source)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	shared := e.opts.HostFolders == nil || e.opts.HostFolders(m.Source)
	switch {
	case !shared:
		return fmt.Errorf("%w: bind source path %s is not in a folder shared from the host (add it with vmbox start --mount)", ErrInvalid, m.Source)
	case !m.CreateSource:
		return fmt.Errorf("%w: bind source path does not exist: %s", ErrInvalid, m.Source)
	}
	if err := os.MkdirAll(m.Source, 0o755); err != nil {
		return fmt.Errorf("%w: create bind source: %w", ErrInvalid, err)
	}
	return nil
}

// resolveMounts turns a create request's mounts into the container's:
// --volumes-from first, then its own (-v, --mount; tmpfs ones go to
// Tmpfs), then an anonymous volume for each of the image's VOLUMEs no
// mount covers. Named volumes are made when missing; bind sources must
// exist.
func (e *Engine) resolveMounts(cfg *api.ContainerConfig, imageVolumes []string) ([]api.Mount, error) {
	var out []api.Mount
	byTarget := map[string]int{}
	add := func(m api.Mount, replace bool) error {
		m.Target = filepath.Clean(m.Target)
		if i, ok := byTarget[m.Target]; ok {
			if !replace {
				return fmt.Errorf("%w: duplicate mount point: %s", ErrInvalid, m.Target)
			}
			out[i] = m
			return nil
		}
		byTarget[m.Target] = len(out)
		out = append(out, m)
		return nil
	}
	for _, from := range cfg.VolumesFrom {
		ref, mode, _ := strings.Cut(from, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return nil, fmt.Errorf("%w: invalid --volumes-from mode %q (ro or rw)", ErrInvalid, mode)
		}
		other, err := e.lookup(ref)
		if err != nil {
			return nil, err
		}
		other.mu.Lock()
		mounts := slices.Clone(other.rec.Mounts)
		other.mu.Unlock()
		for _, m := range mounts {
			switch mode {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			}
			m.NoCopy = true
			add(m, true)
		}
	}
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) == "/" {
			return nil, fmt.Errorf("%w: invalid mount target %q: it must be absolute and not /", ErrInvalid, m.Target)
		}
		switch m.Type {
		case api.MountTmpfs:
			if cfg.Tmpfs == nil {
				cfg.Tmpfs = map[string]string{}
			}
			opts := m.TmpfsOptions
			if m.ReadOnly {
				opts = strings.TrimPrefix(opts+",ro", ",")
			}
			cfg.Tmpfs[m.Target] = opts
			continue
		case api.MountBind:
			if !filepath.IsAbs(m.Source) {
				return nil, fmt.Errorf("%w: invalid bind source %q: it must be an absolute path", ErrInvalid, m.Source)
			}
			if err := e.bindSource(m); err != nil {
				return nil, err
			}
		case api.MountVolume:
		default:
			return nil, fmt.Errorf("%w: mount type %q (volume, bind or tmpfs)", ErrInvalid, m.Type)
		}
		if err := add(m, true); err != nil {
			return nil, err
		}
	}
	for _, p := range imageVolumes {
		if _, ok := byTarget[filepath.Clean(p)]; ok {
			continue
		}
		if _, ok := cfg.Tmpfs[p]; ok {
			continue
		}
		add(api.Mount{Type: api.MountVolume, Target: p}, false)
	}
	// The volumes themselves, last, so that a refused request makes none.
	for i, m := range out {
		if m.Type != api.MountVolume {
			continue
		}
		vm, err := e.vols.create(m.Source, nil)
		if err != nil {
			return nil, err
		}
		out[i].Source = vm.Name
	}
	slices.SortStableFunc(out, func(a, b api.Mount) int {
		return cmp.Compare(strings.Count(a.Target, "/"), strings.Count(b.Target, "/"))
	})
	return out, nil
}

// removeAnonymousVolumes removes the anonymous volumes of a removed
// container that no other container mounts.
func (e *Engine) removeAnonymousVolumes(mounts []api.Mount) {
	used := e.volumesInUse()
	for _, m := range mounts {
		if m.Type != api.MountVolume || len(used[m.Source]) > 0 {
			continue
		}
		if vm, err := e.vols.read(m.Source); err == nil && vm.Anonymous {
			if e.vols.remove(m.Source) == nil {
				e.events.publish(volumeEvent("destroy", m.Source))
			}
		}
	}
}

// populateVolumes fills the container's volumes that were never mounted,
// and are empty, with what the image has at their paths (Docker's
// copy-up), before the container first starts with them. Called with
// c.mu held, before the container runs.
func (e *Engine) populateVolumes(c *managedContainer, spec *container.Spec) error {
	var todo []api.Mount
	for _, m := range c.rec.Mounts {
		if m.Type != api.MountVolume {
			continue
		}
		vm, err := e.vols.read(m.Source)
		if err != nil {
			return err
		}
		if vm.Populated {
			continue
		}
		if m.NoCopy {
			if err := e.vols.markPopulated(m.Source); err != nil {
				return err
			}
			continue
		}
		todo = append(todo, m)
	}
	if len(todo) == 0 {
		return nil
	}
	root, err := os.MkdirTemp(c.dir, "fs-")
	if err != nil {
		return fmt.Errorf("copy into volumes: %w", err)
	}
	defer os.Remove(root)
	if err := container.MountRootfs(spec, root); err != nil {
		return fmt.Errorf("copy into volumes: %w", err)
	}
	defer unix.Unmount(root, unix.MNT_DETACH)
	for _, m := range todo {
		data := e.vols.dataDir(m.Source)
		if isEmptyDir(data) {
			src, err := securejoin.SecureJoin(root, m.Target)
			if err != nil {
				return fmt.Errorf("copy into volume %s: %w", m.Source, err)
			}
			if fi, err := os.Stat(src); err == nil && fi.IsDir() {
				if err := copyTree(src, data); err != nil {
					return fmt.Errorf("copy %s into volume %s: %w", m.Target, m.Source, err)
				}
			}
		}
		if err := e.vols.markPopulated(m.Source); err != nil {
			return err
		}
	}
	return nil
}

func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// copyTree copies the tree at src into the existing directory dst: the
// directories, regular files and symlinks, with owners and modes (dst
// itself takes src's); other files (devices, sockets) are left out.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, fi.Mode().Perm()); err != nil && !errors.Is(err, os.ErrExist) {
					return err
				}
			}
		case fi.Mode().IsRegular():
			if err := copyFile(path, target, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return os.Chmod(target, fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
		}
		return nil
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
