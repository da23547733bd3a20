package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// MinMemoryMiB is the least memory a guest boots with, whatever the
// driver: its initramfs is unpacked into RAM.
const MinMemoryMiB = 128

// Resolve checks what every driver requires of s alike and returns a copy
// whose paths are absolute: at least one CPU and MinMemoryMiB, an existing
// instance directory, an existing kernel and (when set) data disk. An empty
// Console becomes consoleDefaultName in Dir. Initrds are made absolute but
// not opened: drivers combine them (package initrd), which checks them.
// Arch is left to the driver, which knows what it can run. The errors do
// not name the VM; drivers add that.
func (s Spec) Resolve(consoleDefaultName string) (Spec, error) {
	if s.CPUs < 1 {
		return Spec{}, fmt.Errorf("%d CPUs: need at least 1", s.CPUs)
	}
	if s.MemoryMiB < MinMemoryMiB {
		return Spec{}, fmt.Errorf("%d MiB of memory: need at least %d", s.MemoryMiB, MinMemoryMiB)
	}
	if s.Dir == "" || s.Kernel == "" {
		return Spec{}, errors.New("spec needs an instance directory and a kernel")
	}
	r := s
	var err error
	if r.Dir, err = filepath.Abs(s.Dir); err != nil {
		return Spec{}, err
	}
	if st, err := os.Stat(r.Dir); err != nil {
		return Spec{}, err
	} else if !st.IsDir() {
		return Spec{}, fmt.Errorf("%s is not a directory", r.Dir)
	}
	if r.Kernel, err = filepath.Abs(s.Kernel); err != nil {
		return Spec{}, err
	}
	if _, err := os.Stat(r.Kernel); err != nil {
		return Spec{}, fmt.Errorf("kernel: %w", err)
	}
	if s.DataDisk != "" {
		if r.DataDisk, err = filepath.Abs(s.DataDisk); err != nil {
			return Spec{}, err
		}
		if _, err := os.Stat(r.DataDisk); err != nil {
			return Spec{}, fmt.Errorf("data disk: %w", err)
		}
	}
	if r.Console == "" {
		r.Console = filepath.Join(r.Dir, consoleDefaultName)
	}
	if r.Console, err = filepath.Abs(r.Console); err != nil {
		return Spec{}, err
	}
	if s.Initrds != nil {
		// A new slice: the caller's is not written to.
		r.Initrds = make([]string, len(s.Initrds))
		for i, p := range s.Initrds {
			if r.Initrds[i], err = filepath.Abs(p); err != nil {
				return Spec{}, err
			}
		}
	}
	return r, nil
}
