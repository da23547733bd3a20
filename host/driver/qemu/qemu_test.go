package qemu

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/host/driver"
)

// TestConfig covers what config adds to driver.Spec.Resolve (tested in
// host/driver): the guest architecture and accelerator, the combined initrd
// and the files in the instance directory, and errors that name the VM.
func TestConfig(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kernel, disk := filepath.Join(dir, "Image"), filepath.Join(dir, "data.img")
	base, inst := filepath.Join(dir, "initrd.img"), filepath.Join(dir, "instance.cpio")
	for _, p := range []string{kernel, disk, base, inst} {
		writeFile(t, p, []byte("x"))
	}
	good := driver.Spec{
		Name: "default", Dir: dir, Arch: "arm64", CPUs: 2, MemoryMiB: 512,
		Kernel: kernel, Initrds: []string{base, inst}, DataDisk: disk,
	}
	d := New(Options{Accel: AccelTCG, Arch: "arm64"})

	c, err := d.config(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name: "default", Arch: "arm64", Accel: AccelTCG, CPUs: 2, MemoryMiB: 512,
		Kernel: kernel, Initrd: filepath.Join(dir, InitrdName), DataDisk: disk,
		Console: filepath.Join(dir, ConsoleName), QMPSocket: QMPSocketName,
		Pidfile: filepath.Join(dir, PidfileName),
	}
	// Cmdline is KernelCmdline's, tested with it.
	if c.Name != want.Name || c.Arch != want.Arch || c.Accel != want.Accel || c.CPUs != want.CPUs ||
		c.MemoryMiB != want.MemoryMiB || c.Kernel != want.Kernel || c.Initrd != want.Initrd ||
		c.DataDisk != want.DataDisk || c.Console != want.Console || c.QMPSocket != want.QMPSocket ||
		c.Pidfile != want.Pidfile {
		t.Errorf("config =\n %+v\nwant\n %+v", c, want)
	}

	for _, tt := range []struct {
		name string
		d    *Driver
		edit func(*driver.Spec)
		err  string
	}{
		{"arch", d, func(s *driver.Spec) { s.Arch = "riscv64" }, `guest architecture "riscv64" is not supported`},
		{"no CPU", d, func(s *driver.Spec) { s.CPUs = 0 }, "0 CPUs"},
		{"little memory", d, func(s *driver.Spec) { s.MemoryMiB = 64 }, "64 MiB of memory"},
		{"missing kernel", d, func(s *driver.Spec) { s.Kernel = filepath.Join(dir, "nope") }, "kernel:"},
		{"dir is a file", d, func(s *driver.Spec) { s.Dir = kernel }, "is not a directory"},
		{"missing initrd", d, func(s *driver.Spec) { s.Initrds = []string{base, filepath.Join(dir, "nope")} }, "initrd"},
		{"accelerator", New(Options{Accel: "xen", Arch: "arm64"}), func(*driver.Spec) {}, `unknown QEMU accelerator "xen"`},
	} {
		s := good
		tt.edit(&s)
		_, err := tt.d.config(ctx, s)
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "VM default: ") {
			t.Errorf("%s: %v, want %q after \"VM default: \"", tt.name, err, tt.err)
		}
	}
}
