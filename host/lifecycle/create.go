package lifecycle

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"

	"github.com/vmbox/vmbox/host/instance"
)

// Settings are an instance's resources as a user sets them. A nil field
// keeps the instance's value (or, at creation, the default).
type Settings struct {
	CPUs      *int
	MemoryMiB *int
	DiskGiB   *int
	Driver    *string // "" picks the best driver for the host
	Arch      *string // GOARCH spelling
	// Mounts, when set, replace the instance's shared host folders
	// beyond the defaults.
	Mounts *[]instance.Mount
	// MountType, when set, replaces the instance's mount type.
	MountType *string
	// IdlePause, when set, replaces the instance's idle pause delay
	// (instance.Config.IdlePause).
	IdlePause *string
}

// apply writes s onto c. creating allows what only a new instance may take.
func (s Settings) apply(c *instance.Config, creating bool) error {
	if s.CPUs != nil {
		c.CPUs = *s.CPUs
	}
	if s.MemoryMiB != nil {
		c.MemoryMiB = *s.MemoryMiB
	}
	if s.DiskGiB != nil {
		if !creating && *s.DiskGiB < c.DiskGiB {
			return invalidf("invalid --disk %dGiB: the data disk is %dGiB and is never shrunk", *s.DiskGiB, c.DiskGiB)
		}
		c.DiskGiB = *s.DiskGiB
	}
	if s.Driver != nil {
		c.Driver = *s.Driver
	}
	if s.Arch != nil {
		if !creating && *s.Arch != c.Arch {
			return invalidf("invalid --arch %s: instance %q was created for %s; delete it to change", *s.Arch, c.Name, c.Arch)
		}
		c.Arch = *s.Arch
	}
	if s.Mounts != nil {
		c.Mounts = *s.Mounts
	}
	if s.MountType != nil {
		c.MountType = *s.MountType
	}
	if s.IdlePause != nil {
		c.IdlePause = *s.IdlePause
	}
	if err := c.Validate(); err != nil {
		return invalidf("%s", err.Error())
	}
	return nil
}

// Create makes a new instance with s over the defaults. It fails with
// ErrExists, changing nothing, when the name is taken.
func (m *Manager) Create(name string, s Settings) (*instance.Instance, error) {
	if err := instance.ValidateName(name); err != nil {
		return nil, invalidf("%s", err.Error())
	}
	if _, err := m.Store.Get(name); err == nil {
		return nil, fmt.Errorf("instance %q: %w", name, ErrExists)
	} else if !errors.Is(err, instance.ErrNotExist) {
		return nil, err
	}
	cfg := instance.Config{
		Name: name, CPUs: instance.DefaultCPUs, MemoryMiB: instance.DefaultMemoryMiB,
		DiskGiB: instance.DefaultDiskGiB, Arch: runtime.GOARCH,
	}
	if err := s.apply(&cfg, true); err != nil {
		return nil, err
	}
	if cfg.Driver == "" {
		cfg.Driver = DefaultDriver(cfg.Arch)
	}
	if _, err := NewDriver(cfg.Driver, cfg.Arch); err != nil {
		return nil, err
	}
	return m.Store.Create(cfg)
}

// Reconfigure applies s to an existing instance; it takes effect at the
// next start. Growing the disk grows its file at once.
func (m *Manager) Reconfigure(inst *instance.Instance, s Settings) error {
	before := inst.Config
	if err := s.apply(&inst.Config, false); err != nil {
		inst.Config = before
		return err
	}
	if reflect.DeepEqual(inst.Config, before) {
		return nil
	}
	if err := inst.SaveConfig(); err != nil {
		return err
	}
	return inst.EnsureDisk()
}

// Ensure returns the named instance, creating it with s when it does not
// exist and otherwise applying s to it; created says which.
func (m *Manager) Ensure(name string, s Settings) (inst *instance.Instance, created bool, err error) {
	if err := instance.ValidateName(name); err != nil {
		return nil, false, invalidf("%s", err.Error())
	}
	inst, err = m.Store.Get(name)
	if errors.Is(err, instance.ErrNotExist) {
		inst, err = m.Create(name, s)
		return inst, err == nil, err
	}
	if err != nil {
		return nil, false, err
	}
	return inst, false, m.Reconfigure(inst, s)
}
