package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FindSerialPort returns the device path (/dev/vportNpM) of the
// virtio-serial port with the given name (api.SerialPortName). Without
// udev there is no /dev/virtio-ports/NAME, so it reads
// /sys/class/virtio-ports/*/name, polling until ctx ends, because ports
// appear asynchronously after virtio_console loads.
func FindSerialPort(ctx context.Context, name string) (string, error) {
	return findSerialPort(ctx, "/sys/class/virtio-ports", "/dev", name)
}

func findSerialPort(ctx context.Context, classDir, devDir, name string) (string, error) {
	delay := time.Millisecond
	for {
		p, err := scanSerialPorts(classDir, devDir, name)
		if err != nil {
			return "", err
		}
		if p != "" {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("virtio-serial port %q: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// scanSerialPorts returns the port's device path once both its sysfs entry
// and its device node exist, or "".
func scanSerialPorts(classDir, devDir, name string) (string, error) {
	ents, err := os.ReadDir(classDir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // virtio_console not loaded yet
	}
	if err != nil {
		return "", fmt.Errorf("virtio-serial ports: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(classDir, e.Name(), "name"))
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := filepath.Join(devDir, e.Name())
		if _, err := os.Stat(dev); err == nil {
			return dev, nil
		}
	}
	return "", nil
}
