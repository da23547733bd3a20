// Package cpio writes deterministic "newc" (SVR4, magic 070701) cpio archives,
// the format the Linux kernel unpacks as an initramfs.
//
// Nothing about the host leaks into an archive: every entry has mtime 0,
// uid and gid 0, device number 0, and inode numbers are assigned
// sequentially, so the same calls always produce the same bytes. Entries are
// written in the order the caller adds them; callers that want reproducible
// archives add them in a fixed (for example sorted) order.
//
// The kernel accepts several archives concatenated back to back (it resets
// its hard-link table at each TRAILER!!!), so a host can append a small
// per-instance archive written with this package to a base initramfs, and
// files in the later archive replace those of the same name.
package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// File type bits of the cpio mode field (the same values as Linux's S_IF*).
const (
	typeMask    = 0o170000
	TypeDir     = 0o040000
	TypeReg     = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
	TypeBlock   = 0o060000
)

const (
	magic     = "070701"
	headerLen = 110
	trailer   = "TRAILER!!!"
	// maxSize is the largest value the 8-hex-digit size field holds.
	maxSize = math.MaxUint32
)

// Writer writes one newc archive. It is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	ino    uint32
	closed bool
	err    error // first write error; later calls return it
}

// NewWriter returns a Writer that writes an archive to w. Call Close to write
// the trailer; Close does not close w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Dir adds a directory. perm holds the permission bits (for example 0o755,
// or 0o1777 for a sticky directory); type bits in perm are rejected.
func (w *Writer) Dir(name string, perm uint32) error {
	return w.entry(name, TypeDir, perm, 2, 0, 0, nil, 0)
}

// File adds a regular file holding data.
func (w *Writer) File(name string, perm uint32, data []byte) error {
	return w.entry(name, TypeReg, perm, 1, 0, 0, bytes.NewReader(data), int64(len(data)))
}

// FileFrom adds a regular file whose size bytes are read from r. It fails if
// r yields fewer than size bytes; it reads no more than size.
func (w *Writer) FileFrom(name string, perm uint32, size int64, r io.Reader) error {
	return w.entry(name, TypeReg, perm, 1, 0, 0, r, size)
}

// Symlink adds a symbolic link name pointing at target.
func (w *Writer) Symlink(name, target string) error {
	if target == "" {
		return fmt.Errorf("cpio: symlink %q: empty target", name)
	}
	if strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("cpio: symlink %q: target contains NUL", name)
	}
	return w.entry(name, TypeSymlink, 0o777, 1, 0, 0, strings.NewReader(target), int64(len(target)))
}

// CharDev adds a character device node, such as dev/console (5, 1), which
// the kernel needs in an initramfs to give /init a console before devtmpfs
// is mounted.
func (w *Writer) CharDev(name string, perm, major, minor uint32) error {
	return w.entry(name, TypeChar, perm, 1, major, minor, nil, 0)
}

// Close writes the trailer entry. It is an error to add entries afterwards.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("cpio: writer already closed")
	}
	// The trailer conventionally has inode 0 and nlink 1.
	w.err = w.writeHeader(trailer, 0, 0, 1, 0, 0, 0)
	if w.err == nil {
		w.err = w.pad(headerLen + len(trailer) + 1)
	}
	w.closed = true
	return w.err
}

func (w *Writer) entry(name string, typ, perm, nlink, rmajor, rminor uint32, data io.Reader, size int64) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("cpio: write after Close")
	}
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	if perm&^0o7777 != 0 {
		return fmt.Errorf("cpio: %s: mode %#o has bits outside the permission bits", name, perm)
	}
	if size < 0 || size > maxSize {
		return fmt.Errorf("cpio: %s: size %d out of range for newc (max %d)", name, size, uint64(maxSize))
	}
	w.ino++
	if w.err = w.writeHeader(name, w.ino, typ|perm, nlink, uint32(size), rmajor, rminor); w.err != nil {
		return w.err
	}
	if w.err = w.pad(headerLen + len(name) + 1); w.err != nil {
		return w.err
	}
	if size > 0 {
		n, err := io.CopyN(w.w, data, size)
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The header already promised size bytes: the archive is now
				// unusable, so every later call reports this too.
				w.err = fmt.Errorf("cpio: %s: data ended after %d of %d bytes", name, n, size)
			} else {
				w.err = fmt.Errorf("cpio: %s: %w", name, err)
			}
			return w.err
		}
		if w.err = w.pad(int(size % 4)); w.err != nil {
			return w.err
		}
	}
	return nil
}

func (w *Writer) writeHeader(name string, ino, mode, nlink, size, rmajor, rminor uint32) error {
	// Fields: magic ino mode uid gid nlink mtime filesize devmajor devminor
	// rdevmajor rdevminor namesize check, each 8 hex digits after the magic.
	h := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		magic, ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := io.WriteString(w.w, h); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	if _, err := io.WriteString(w.w, name+"\x00"); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return nil
}

// pad writes the zero bytes that align n written bytes to 4.
func (w *Writer) pad(n int) error {
	if r := n % 4; r != 0 {
		if _, err := w.w.Write(make([]byte, 4-r)); err != nil {
			return fmt.Errorf("cpio: %w", err)
		}
	}
	return nil
}

// cleanName turns "/a/b" or "./a/b" into "a/b" and rejects names that could
// escape the archive root or that the format cannot carry.
func cleanName(name string) (string, error) {
	orig := name
	name = strings.TrimLeft(name, "/")
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(name[2:], "/")
	}
	if name == "" || name == "." {
		return "", fmt.Errorf("cpio: invalid entry name %q", orig)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("cpio: entry name %q contains NUL", orig)
	}
	if name == trailer {
		return "", fmt.Errorf("cpio: entry name %q is reserved for the trailer", orig)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("cpio: invalid entry name %q", orig)
		}
	}
	return name, nil
}
