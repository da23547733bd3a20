// Package initrd builds the single initramfs file a hypervisor boots from
// several archives (the guest's base image, then the per-instance
// configuration), rewriting only what changed since the last boot. The qemu
// and vz drivers share it.
package initrd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Prepare returns the one initrd file a hypervisor loads for inputs: ""
// for none, the input itself for one, else out, which it (re)writes.
//
// Hypervisors take a single initrd, and Linux accepts several cpio archives
// (compressed or not) laid end to end, so more than one input is
// concatenated into out. The kernel looks for an uncompressed
// archive's header only at 4-byte-aligned offsets and skips zero bytes
// between archives, so each input starts aligned, after zero padding.
//
// The usual case is a large base image that rarely changes followed by a
// small per-instance archive the host rewrites at every start. A stamp file
// records each input's identity and offset, so only the part from the first
// changed input on is rewritten: the base image is not copied again.
func Prepare(ctx context.Context, out string, inputs []string) (string, error) {
	switch len(inputs) {
	case 0:
		return "", nil
	case 1:
		if _, err := os.Stat(inputs[0]); err != nil {
			return "", fmt.Errorf("initrd: %w", err)
		}
		return inputs[0], nil
	}
	stampPath := out + ".stamp"

	want := make([]initrdPart, len(inputs))
	for i, in := range inputs {
		abs, err := filepath.Abs(in)
		if err != nil {
			return "", fmt.Errorf("initrd: %w", err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("initrd: %w", err)
		}
		if !st.Mode().IsRegular() {
			return "", fmt.Errorf("initrd %s: not a regular file", abs)
		}
		want[i] = initrdPart{path: abs, size: st.Size(), mtime: st.ModTime().UnixNano()}
	}
	offset := int64(0)
	for i := range want {
		want[i].offset = offset
		offset = align4(offset + want[i].size)
	}
	total := offset

	// Keep the prefix of the existing file that the stamp vouches for.
	keep := 0
	have, err := readStamp(stampPath)
	if err == nil {
		if st, err := os.Stat(out); err == nil && st.Size() == have.total {
			for keep < len(want) && keep < len(have.parts) && want[keep] == have.parts[keep] {
				keep++
			}
		}
	}
	if keep == len(want) && have.total == total {
		return out, nil
	}

	// The stamp goes first so that an interrupted rewrite is never trusted.
	if err := os.Remove(stampPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("initrd: %w", err)
	}
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("initrd: %w", err)
	}
	defer f.Close()
	start := int64(0) // end of the part kept
	if keep > 0 {
		start = want[keep-1].offset + want[keep-1].size
	}
	if err := f.Truncate(start); err != nil {
		return "", fmt.Errorf("initrd %s: %w", out, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return "", fmt.Errorf("initrd %s: %w", out, err)
	}
	pos := start
	for _, p := range want[keep:] {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if pad := p.offset - pos; pad > 0 {
			if _, err := f.Write(make([]byte, pad)); err != nil {
				return "", fmt.Errorf("initrd %s: %w", out, err)
			}
		}
		n, err := copyFile(f, p.path)
		if err != nil {
			return "", err
		}
		if n != p.size {
			return "", fmt.Errorf("initrd %s changed while being copied", p.path)
		}
		pos = p.offset + n
	}
	// Trailing padding keeps the total what the stamp says.
	if pad := total - pos; pad > 0 {
		if _, err := f.Write(make([]byte, pad)); err != nil {
			return "", fmt.Errorf("initrd %s: %w", out, err)
		}
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("initrd %s: %w", out, err)
	}
	if err := writeStamp(stampPath, initrdStamp{parts: want, total: total}); err != nil {
		return "", err
	}
	return out, nil
}

func align4(n int64) int64 { return (n + 3) &^ 3 }

// copyFile appends the file at path to f. io.Copy between files lets the
// kernel copy (copy_file_range on Linux).
func copyFile(f *os.File, path string) (int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("initrd: %w", err)
	}
	defer in.Close()
	n, err := io.Copy(f, in)
	if err != nil {
		return n, fmt.Errorf("initrd: copy %s: %w", path, err)
	}
	return n, nil
}

// initrdPart identifies one input by path, size and modification time, and
// where it sits in the combined file.
type initrdPart struct {
	path   string
	size   int64
	mtime  int64
	offset int64
}

type initrdStamp struct {
	parts []initrdPart
	total int64
}

// The stamp is lines of "offset size mtime path" then "total N".
func readStamp(path string) (initrdStamp, error) {
	var s initrdStamp
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		if i == len(lines)-1 {
			v, ok := strings.CutPrefix(l, "total ")
			if !ok {
				return s, errors.New("bad stamp")
			}
			s.total, err = strconv.ParseInt(v, 10, 64)
			return s, err
		}
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			return s, errors.New("bad stamp")
		}
		var p initrdPart
		var e1, e2, e3 error
		p.offset, e1 = strconv.ParseInt(f[0], 10, 64)
		p.size, e2 = strconv.ParseInt(f[1], 10, 64)
		p.mtime, e3 = strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(e1, e2, e3); err != nil {
			return s, err
		}
		p.path = f[3]
		s.parts = append(s.parts, p)
	}
	return s, errors.New("bad stamp")
}

func writeStamp(path string, s initrdStamp) error {
	var b strings.Builder
	for _, p := range s.parts {
		fmt.Fprintf(&b, "%d %d %d %s\n", p.offset, p.size, p.mtime, p.path)
	}
	fmt.Fprintf(&b, "total %d\n", s.total)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("initrd stamp: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("initrd stamp: %w", err)
	}
	return nil
}
