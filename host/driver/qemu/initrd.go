package qemu

import (
	"context"
	"path/filepath"

	"github.com/vmbox/vmbox/host/driver/initrd"
)

// prepareInitrd returns the one initrd file QEMU loads for inputs (QEMU
// takes a single -initrd): more than one input is concatenated into
// InitrdName in dir, rewriting only what changed since the last start.
func prepareInitrd(ctx context.Context, dir string, inputs []string) (string, error) {
	return initrd.Prepare(ctx, filepath.Join(dir, InitrdName), inputs)
}
