//go:build linux

package boot

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func inputEvent(typ, code uint16, value int32) []byte {
	b := make([]byte, inputEvSize)
	binary.NativeEndian.PutUint16(b[16:], typ)
	binary.NativeEndian.PutUint16(b[18:], code)
	binary.NativeEndian.PutUint32(b[20:], uint32(value))
	return b
}

// TestPowerButton creates the input directory and a device (a FIFO
// standing in for the evdev node) after the watcher started, as the
// kernel does when the drivers load, and checks that only a power-key
// press is reported.
func TestPowerButton(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "input")
	pressed := make(chan struct{}, 4)
	go watchPowerButton(dir, func() { pressed <- struct{}{} }, t.Logf)
	time.Sleep(50 * time.Millisecond) // let the watcher start watching
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(dir, "event0")
	if err := unix.Mkfifo(dev, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0) // blocks until the watcher opens it
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []byte
	for _, ev := range []struct {
		typ, code uint16
		value     int32
	}{
		{evKey, 30, keyPressed},       // KEY_A
		{evKey, keyPower, 0},          // a release
		{0, 0, 0},                     // EV_SYN
		{evKey, keyPower, keyPressed}, // the press
		{0, 0, 0},
	} {
		events = append(events, inputEvent(ev.typ, ev.code, ev.value)...)
	}
	if _, err := f.Write(events); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pressed:
	case <-time.After(5 * time.Second):
		t.Fatal("no power-button press reported")
	}
	select {
	case <-pressed:
		t.Fatal("more than one press reported")
	case <-time.After(100 * time.Millisecond):
	}
}
