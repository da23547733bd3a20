package cli

import (
	"fmt"

	"github.com/vmbox/vmbox/host/driver"
	"github.com/vmbox/vmbox/host/driver/qemu"
	"github.com/vmbox/vmbox/host/driver/vz"
)

// newDriver returns the named hypervisor driver for guests of arch, or an
// error saying why it cannot run here.
func newDriver(name, arch string) (driver.Driver, error) {
	var d driver.Driver
	switch name {
	case "qemu", "":
		d = qemu.New(qemu.Options{Arch: arch})
	case "vz":
		d = vz.New()
	default:
		return nil, &ExitError{Code: 2, Message: fmt.Sprintf("unknown driver %q: use qemu or vz", name)}
	}
	if err := d.Available(); err != nil {
		return nil, err
	}
	return d, nil
}
