// Package lifecycle owns an instance's life on the host: create (with its
// settings checked), start (spawn the detached host process and wait until
// the guest answers), stop (asking the guest, then forcing), status and
// delete. The CLI's commands are thin callers of it, and so is any other
// front end (an API server) that manages instances.
package lifecycle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/driver/qemu"
	"github.com/vmbox/vmbox/host/driver/vz"
	"github.com/vmbox/vmbox/host/instance"
)

// ErrInvalid marks errors caused by the caller's input (a bad setting, a
// change an instance cannot take); front ends report them as usage errors.
var ErrInvalid = errors.New("invalid")

// ErrExists is returned (wrapped) by Create for a name already taken.
var ErrExists = errors.New("instance already exists")

// invalidf formats an ErrInvalid error whose message is just the text.
func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Manager manages the instances of one store.
type Manager struct {
	Store instance.Store
	// Executable is the vmbox binary the host process runs as; the running
	// executable when empty.
	Executable string
}

// NewDriver returns the named hypervisor driver for guests of arch, or an
// error saying why it cannot run here.
func NewDriver(name, arch string) (driver.Driver, error) {
	var d driver.Driver
	switch name {
	case "qemu", "":
		d = qemu.New(qemu.Options{Arch: arch})
	case "vz":
		d = vz.New()
	default:
		return nil, invalidf("unknown driver %q: use qemu or vz", name)
	}
	if err := d.Available(); err != nil {
		return nil, err
	}
	return d, nil
}

// DefaultDriver is vz on a Mac that can run a guest of arch with it, else qemu.
func DefaultDriver(arch string) string {
	if runtime.GOOS == "darwin" && arch == runtime.GOARCH {
		if _, err := NewDriver("vz", arch); err == nil {
			return "vz"
		}
	}
	return "qemu"
}

// FindImage locates the guest image for arch: $VMBOX_IMAGE_DIR, then
// ../share/vmbox/<arch> next to the binary (installed layout), then
// ../build/image/<arch> (a source checkout's bin/).
func FindImage(arch string) (string, error) {
	var candidates []string
	if d := os.Getenv("VMBOX_IMAGE_DIR"); d != "" {
		candidates = append(candidates, d)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dir := filepath.Dir(exe)
		candidates = append(candidates,
			filepath.Join(dir, "..", "share", "vmbox", arch),
			filepath.Join(dir, "..", "build", "image", arch))
	}
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "kernel")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initrd.img")); err == nil {
				return filepath.Clean(d), nil
			}
		}
	}
	return "", fmt.Errorf("no guest image for %s found (looked in %s); reinstall vmbox, set VMBOX_IMAGE_DIR, or in a source checkout run: make image ARCH=%s", arch, strings.Join(candidates, ", "), arch)
}
