package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// trimDelay gathers a burst of removals (rm of many containers, rmi of an
// image's layers) into one trim.
const trimDelay = 2 * time.Second

// Trimmer hands freed blocks of a file system back to the disk beneath it
// (FITRIM): on a sparse disk image with discard=unmap, that returns the
// space to the host. Removals ask for a trim (Poke); it runs once they
// have been quiet for trimDelay.
type Trimmer struct {
	path string
	log  *slog.Logger
	poke chan struct{}
}

// NewTrimmer trims the file system mounted at path.
func NewTrimmer(path string, log *slog.Logger) *Trimmer {
	return &Trimmer{path: path, log: log, poke: make(chan struct{}, 1)}
}

// Poke asks for a trim soon; it never blocks.
func (t *Trimmer) Poke() {
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

// Run trims after pokes until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.poke:
		}
		// Debounce: wait until no poke has come for trimDelay.
		timer := time.NewTimer(trimDelay)
	quiet:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-t.poke:
				timer.Reset(trimDelay)
			case <-timer.C:
				break quiet
			}
		}
		start := time.Now()
		n, err := Trim(t.path)
		if err != nil {
			t.log.Warn("trim", "path", t.path, "err", err)
			continue
		}
		t.log.Info("trimmed", "path", t.path, "bytes", n, "took", time.Since(start).Round(time.Millisecond))
	}
}

// fitrim is FITRIM of <linux/fs.h>: _IOWR('X', 121, struct fstrim_range).
const fitrim = 0xC0185879

// fstrimRange is struct fstrim_range of <linux/fs.h>.
type fstrimRange struct {
	Start, Len, MinLen uint64
}

// Trim writes back the file system at path (so that blocks freed by
// deletions are free on disk) and discards its free blocks. It returns how
// many bytes the file system reported trimmed.
func Trim(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return 0, fmt.Errorf("syncfs %s: %w", path, err)
	}
	r := fstrimRange{Len: ^uint64(0)}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fitrim, uintptr(unsafe.Pointer(&r))); errno != 0 {
		return 0, fmt.Errorf("FITRIM %s: %w", path, errno)
	}
	return r.Len, nil
}
