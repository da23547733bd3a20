package boot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addPort(t *testing.T, classDir, devDir, port, name string, withDev bool) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(classDir, port), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(classDir, port, "name"), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if withDev {
		if err := os.WriteFile(filepath.Join(devDir, port), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindSerialPort(t *testing.T) {
	root := t.TempDir()
	classDir, devDir := filepath.Join(root, "sys/class/virtio-ports"), filepath.Join(root, "dev")
	if err := os.MkdirAll(devDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Nothing there yet (virtio_console not loaded): the search waits.
	short, cancelShort := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err := findSerialPort(short, classDir, devDir, "vmbox.agent")
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no ports: %v", err)
	}

	addPort(t, classDir, devDir, "vport0p0", "org.qemu.guest_agent.0", true)
	addPort(t, classDir, devDir, "vport0p1", "vmbox.agent", false) // node not created yet
	found := make(chan string, 1)
	go func() {
		p, err := findSerialPort(ctx, classDir, devDir, "vmbox.agent")
		if err != nil {
			t.Error(err)
		}
		found <- p
	}()
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(devDir, "vport0p1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if p := <-found; p != filepath.Join(devDir, "vport0p1") {
		t.Fatalf("found %q", p)
	}

	addPort(t, classDir, devDir, "vport1p3", "other", true)
	if p, err := findSerialPort(ctx, classDir, devDir, "other"); err != nil || p != filepath.Join(devDir, "vport1p3") {
		t.Fatalf("second port: %q, %v", p, err)
	}
}
