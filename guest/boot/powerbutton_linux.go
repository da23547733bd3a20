//go:build linux

package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Input event constants (linux/input-event-codes.h).
const (
	evKey       = 0x01
	keyPower    = 116
	keyPressed  = 1
	inputEvSize = 24 // struct input_event on 64-bit: timeval (16), type, code (2 each), value (4)
)

// powerButton watches the input devices under dir (/dev/input) and calls
// pressed on every power-key press. The devices appear when their drivers
// load (the agent loads them after boot), and dir itself only once the
// first one does, so it watches dir's parent with inotify as well as dir.
type powerButton struct {
	dir     string
	pressed func()
	logf    func(format string, args ...any)

	mu     sync.Mutex
	opened map[string]bool
}

// watchPowerButton runs the watcher until its inotify descriptor fails; it
// is meant to run for PID 1's life.
func watchPowerButton(dir string, pressed func(), logf func(string, ...any)) error {
	w := &powerButton{dir: dir, pressed: pressed, logf: logf, opened: map[string]bool{}}
	return w.run()
}

func (w *powerButton) run() error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("power button: inotify: %w", err)
	}
	defer unix.Close(fd)
	parent := filepath.Dir(w.dir)
	if _, err := unix.InotifyAddWatch(fd, parent, unix.IN_CREATE|unix.IN_ONLYDIR); err != nil {
		return fmt.Errorf("power button: watch %s: %w", parent, err)
	}
	watching := false
	buf := make([]byte, 4096)
	for {
		// Watch dir before scanning it, so that no device created in
		// between is missed.
		if !watching {
			if _, err := unix.InotifyAddWatch(fd, w.dir, unix.IN_CREATE|unix.IN_ATTRIB); err == nil {
				watching = true
			} else if !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("power button: watch %s: %w", w.dir, err)
			}
		}
		if watching {
			w.scan()
		}
		if _, err := unix.Read(fd, buf); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("power button: read inotify: %w", err)
		}
	}
}

// scan starts a reader for every event device not yet open.
func (w *powerButton) scan() {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "event") {
			continue
		}
		p := filepath.Join(w.dir, e.Name())
		w.mu.Lock()
		seen := w.opened[p]
		w.mu.Unlock()
		if seen {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			// The node may exist before its permissions are final: a
			// later IN_ATTRIB rescans.
			continue
		}
		w.mu.Lock()
		w.opened[p] = true
		w.mu.Unlock()
		go w.read(p, f)
	}
}

// read reports the power-key presses of one device until it goes away.
func (w *powerButton) read(path string, f *os.File) {
	defer func() {
		f.Close()
		w.mu.Lock()
		delete(w.opened, path)
		w.mu.Unlock()
	}()
	buf := make([]byte, inputEvSize*16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				w.logf("power button: %s: %v", path, err)
			}
			return
		}
		for ev := buf[:n-n%inputEvSize]; len(ev) >= inputEvSize; ev = ev[inputEvSize:] {
			typ := binary.NativeEndian.Uint16(ev[16:])
			code := binary.NativeEndian.Uint16(ev[18:])
			value := int32(binary.NativeEndian.Uint32(ev[20:]))
			if typ == evKey && code == keyPower && value == keyPressed {
				w.pressed()
			}
		}
	}
}
