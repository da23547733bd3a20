package hostproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/internal/cpio"
)

// WriteInstanceInitrd writes the per-instance initramfs that the guest's
// base image is booted with: the agent's configuration, including the keys
// that let host and guest trust each other without a first-use prompt.
func WriteInstanceInitrd(path string, inst *instance.Instance, keys *instance.Keys, drv driver.Driver, now time.Time) error {
	cfg := vmconfig.Config{
		Version:          vmconfig.Version,
		Name:             inst.Config.Name,
		Hostname:         "vmbox-" + inst.Config.Name,
		AuthorizedKey:    string(bytes.TrimSpace(keys.AuthorizedKey)),
		HostKey:          string(keys.HostKeyPEM),
		BootTimeUnixNano: now.UnixNano(),
		Network:          drv.GuestNetwork(),
		DataDisk:         vmconfig.DataDisk{Required: true, Fresh: !inst.Config.DiskInUse},
		Agent:            drv.GuestAgent(),
		Modules:          drv.GuestModules(inst.Config.Arch),
		LateModules:      drv.GuestLateModules(inst.Config.Arch),
		CPUs:             inst.Config.CPUs,
	}
	b, err := InstanceInitrd(cfg)
	if err != nil {
		return err
	}
	return instance.WriteFileAtomic(path, b, 0o600)
}

// InstanceInitrd encodes cfg as the newc archive Linux unpacks over the
// base initramfs, with the document at vmconfig.Path.
func InstanceInitrd(cfg vmconfig.Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("instance configuration: %w", err)
	}
	doc, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode instance configuration: %w", err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, d := range []string{"etc", "etc/vmbox"} {
		if err := w.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := w.File(vmconfig.Path[1:], 0o600, doc); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
