package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// entry is one archive member as read back by readArchive.
type entry struct {
	Name      string
	Ino       uint32
	Mode      uint32
	UID, GID  uint32
	Nlink     uint32
	Mtime     uint32
	DevMajor  uint32
	DevMinor  uint32
	RdevMajor uint32
	RdevMinor uint32
	Data      string
}

// readArchive is an independent newc reader: it checks magic, alignment and
// the trailer, and returns the entries before the trailer. It returns the
// number of bytes consumed so concatenated archives can be read in turn.
func readArchive(b []byte) ([]entry, int, error) {
	var out []entry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if len(b)-off < headerLen {
			return nil, 0, fmt.Errorf("short header at %d", off)
		}
		h := b[off : off+headerLen]
		if string(h[:6]) != magic {
			return nil, 0, fmt.Errorf("bad magic %q at %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, 0, fmt.Errorf("field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		namesize := int(f[11])
		if f[12] != 0 {
			return nil, 0, fmt.Errorf("check field %d, want 0", f[12])
		}
		nameEnd := off + headerLen + namesize
		if namesize < 1 || nameEnd > len(b) || b[nameEnd-1] != 0 {
			return nil, 0, fmt.Errorf("bad name at %d", off)
		}
		name := string(b[off+headerLen : nameEnd-1])
		dataStart := align(nameEnd)
		size := int(f[6])
		if dataStart+size > len(b) {
			return nil, 0, fmt.Errorf("%s: data past end", name)
		}
		for _, p := range b[nameEnd:dataStart] {
			if p != 0 {
				return nil, 0, fmt.Errorf("%s: nonzero name padding", name)
			}
		}
		data := string(b[dataStart : dataStart+size])
		next := align(dataStart + size)
		if next > len(b) {
			return nil, 0, fmt.Errorf("%s: missing data padding", name)
		}
		off = next
		if name == trailer {
			return out, off, nil
		}
		out = append(out, entry{
			Name: name, Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5],
			DevMajor: f[7], DevMinor: f[8], RdevMajor: f[9], RdevMinor: f[10], Data: data,
		})
	}
}

func writeSample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	steps := []error{
		w.Dir("/bin", 0o755),
		w.File("bin/busybox", 0o755, []byte("ELF...")),
		w.Symlink("bin/sh", "busybox"),
		w.Dir("dev", 0o755),
		w.CharDev("dev/console", 0o600, 5, 1),
		w.Dir("tmp", 0o1777),
		w.File("./etc/empty", 0o644, nil),
		w.FileFrom("etc/odd", 0o600, 5, strings.NewReader("12345 and more that is not read")),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := writeSample(t)
	if len(b)%4 != 0 {
		t.Errorf("archive length %d not a multiple of 4", len(b))
	}
	got, n, err := readArchive(b)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(b) {
		t.Errorf("trailer ends at %d, archive is %d bytes", n, len(b))
	}
	want := []entry{
		{Name: "bin", Ino: 1, Mode: TypeDir | 0o755, Nlink: 2},
		{Name: "bin/busybox", Ino: 2, Mode: TypeReg | 0o755, Nlink: 1, Data: "ELF..."},
		{Name: "bin/sh", Ino: 3, Mode: TypeSymlink | 0o777, Nlink: 1, Data: "busybox"},
		{Name: "dev", Ino: 4, Mode: TypeDir | 0o755, Nlink: 2},
		{Name: "dev/console", Ino: 5, Mode: TypeChar | 0o600, Nlink: 1, RdevMajor: 5, RdevMinor: 1},
		{Name: "tmp", Ino: 6, Mode: TypeDir | 0o1777, Nlink: 2},
		{Name: "etc/empty", Ino: 7, Mode: TypeReg | 0o644, Nlink: 1},
		{Name: "etc/odd", Ino: 8, Mode: TypeReg | 0o600, Nlink: 1, Data: "12345"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back:\n%+v\nwant:\n%+v", got, want)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := writeSample(t), writeSample(t)
	if !bytes.Equal(a, b) {
		t.Fatal("two archives from the same calls differ")
	}
}

func TestConcatenated(t *testing.T) {
	base := writeSample(t)
	var extra bytes.Buffer
	w := NewWriter(&extra)
	if err := w.File("etc/odd", 0o600, []byte("override")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	all := append(append([]byte(nil), base...), extra.Bytes()...)
	first, n, err := readArchive(all)
	if err != nil {
		t.Fatal(err)
	}
	second, m, err := readArchive(all[n:])
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 8 || len(second) != 1 || n+m != len(all) || second[0].Data != "override" {
		t.Fatalf("concatenation read back wrongly: %d + %d entries, %d+%d of %d bytes", len(first), len(second), n, m, len(all))
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		add  func(w *Writer) error
		want string
	}{
		{"empty name", func(w *Writer) error { return w.Dir("", 0o755) }, "invalid entry name"},
		{"root", func(w *Writer) error { return w.Dir("/", 0o755) }, "invalid entry name"},
		{"dotdot", func(w *Writer) error { return w.File("a/../../etc/passwd", 0o644, nil) }, "invalid entry name"},
		{"double slash", func(w *Writer) error { return w.File("a//b", 0o644, nil) }, "invalid entry name"},
		{"nul", func(w *Writer) error { return w.File("a\x00b", 0o644, nil) }, "NUL"},
		{"trailer name", func(w *Writer) error { return w.File("TRAILER!!!", 0o644, nil) }, "reserved"},
		{"type bits in perm", func(w *Writer) error { return w.File("a", TypeReg|0o644, nil) }, "permission bits"},
		{"empty symlink", func(w *Writer) error { return w.Symlink("a", "") }, "empty target"},
		{"short reader", func(w *Writer) error { return w.FileFrom("a", 0o644, 10, strings.NewReader("abc")) }, "ended after 3 of 10"},
		{"negative size", func(w *Writer) error { return w.FileFrom("a", 0o644, -1, strings.NewReader("")) }, "out of range"},
		{"too big", func(w *Writer) error { return w.FileFrom("a", 0o644, 1<<32, strings.NewReader("")) }, "out of range"},
		{"after close", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return err
			}
			return w.Dir("a", 0o755)
		}, "after Close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.add(NewWriter(io.Discard))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWriteErrorSticks(t *testing.T) {
	w := NewWriter(&failWriter{after: 1})
	if err := w.File("a", 0o644, []byte("x")); err == nil {
		t.Fatal("want error from failing writer")
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close after failed write: %v, want the first error", err)
	}
}

// TestGNUCpioLists checks that GNU cpio, an independent implementation,
// reads the archive and sees the same names, types and link targets.
func TestGNUCpioLists(t *testing.T) {
	bin, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio binary not installed (apt-get install cpio)")
	}
	b := writeSample(t)
	cmd := exec.Command(bin, "-t", "-v", "--quiet", "--numeric-uid-gid")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		// mode nlink uid gid [size | major, minor] month day year name [-> target]
		if len(f) < 8 {
			t.Fatalf("unexpected cpio line %q", line)
		}
		desc := f[0][:1] + " " + f[2] + ":" + f[3] + " "
		rest := f[len(f)-1]
		if i := indexOf(f, "->"); i > 0 {
			rest = f[i-1] + " -> " + f[i+1]
		}
		got = append(got, desc+rest)
	}
	want := []string{
		"d 0:0 bin",
		"- 0:0 bin/busybox",
		"l 0:0 bin/sh -> busybox",
		"d 0:0 dev",
		"c 0:0 dev/console",
		"d 0:0 tmp",
		"- 0:0 etc/empty",
		"- 0:0 etc/odd",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cpio -t -v:\n%s\nparsed %q\nwant %q", out, got, want)
	}

	// Extract too, to check contents survive.
	dir := t.TempDir()
	cmd = exec.Command(bin, "-i", "-d", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(b)
	// Creating dev/console needs root; other entries must extract regardless.
	_ = cmd.Run()
	data, err := os.ReadFile(filepath.Join(dir, "etc/odd"))
	if err != nil || string(data) != "12345" {
		t.Errorf("extracted etc/odd = %q, %v", data, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("extracted bin/sh -> %q, %v", target, err)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
