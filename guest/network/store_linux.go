package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	fileSuffix = ".json"
	tmpPrefix  = ".tmp-"
	lockFile   = "lock"
)

// lockDir takes dir for this process: the lock goes with the returned
// file's close, or with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network data directory lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errorf(ErrConflict, "network data directory %s is in use by another network manager", dir)
		}
		return nil, fmt.Errorf("network data directory lock: %w", err)
	}
	return f, nil
}

// load reads the stored networks, oldest first. Unreadable files are
// skipped with a warning: one bad file must not cost the VM all its
// networks.
func (m *Manager) load() ([]Network, error) {
	entries, err := os.ReadDir(m.opts.Root)
	if err != nil {
		return nil, fmt.Errorf("network data directory: %w", err)
	}
	var out []Network
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(m.opts.Root, name)
		if strings.HasPrefix(name, tmpPrefix) {
			// A write that did not finish: the file it replaced is whole.
			_ = os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, fileSuffix) || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			m.log.Warn("unreadable network file", "file", path, "err", err)
			continue
		}
		var n Network
		if err := json.Unmarshal(b, &n); err != nil || n.ID+fileSuffix != name || n.Name == "" {
			m.log.Warn("bad network file", "file", path, "err", err)
			continue
		}
		if n.Driver == DriverBridge && (!n.Subnet.IsValid() || !n.Gateway.IsValid() || n.Bridge == "") {
			m.log.Warn("bad network file: bridge network without subnet, gateway or bridge", "file", path)
			continue
		}
		out = append(out, n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// save writes n's file atomically: a crash leaves the old file or the new
// one, never a torn one.
func (m *Manager) save(n Network) error {
	b, err := json.MarshalIndent(n, "", "\t")
	if err != nil {
		return fmt.Errorf("save network %s: %w", n.Name, err)
	}
	if err := writeFileAtomic(m.opts.Root, n.ID+fileSuffix, b); err != nil {
		return fmt.Errorf("save network %s: %w", n.Name, err)
	}
	return nil
}

func (m *Manager) unsave(id string) error {
	err := os.Remove(filepath.Join(m.opts.Root, id+fileSuffix))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(m.opts.Root)
}

func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
