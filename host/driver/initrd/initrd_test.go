package initrd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// concat is what the combined initrd must hold: each input at a 4-byte
// aligned offset, zero padding between, total a multiple of 4.
func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func TestPrepare(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	combined := filepath.Join(dir, "initrd.combined")
	in := t.TempDir()
	base, inst, extra := filepath.Join(in, "base"), filepath.Join(in, "inst"), filepath.Join(in, "extra")
	baseData := bytes.Repeat([]byte("B"), 1001) // not a multiple of 4
	writeFile(t, base, baseData)
	writeFile(t, inst, []byte("instance-1"))
	writeFile(t, extra, []byte("x"))

	// No input, one input: nothing is written.
	if got, err := Prepare(ctx, combined, nil); err != nil || got != "" {
		t.Fatalf("no initrds: %q, %v", got, err)
	}
	if got, err := Prepare(ctx, combined, []string{base}); err != nil || got != base {
		t.Fatalf("one initrd: %q, %v", got, err)
	}
	if _, err := os.Stat(combined); err == nil {
		t.Fatal("one initrd was copied")
	}
	if _, err := Prepare(ctx, combined, []string{filepath.Join(in, "missing")}); err == nil {
		t.Fatal("a missing initrd was accepted")
	}

	check := func(want []byte) string {
		t.Helper()
		out, err := Prepare(ctx, combined, []string{base, inst, extra})
		if err != nil {
			t.Fatal(err)
		}
		if out != combined {
			t.Fatalf("combined initrd at %s, want %s", out, combined)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("combined initrd is %d bytes %q..., want %d bytes", len(got), got[max(0, len(got)-40):], len(want))
		}
		return out
	}
	out := check(concat(baseData, []byte("instance-1"), []byte("x")))

	// Unchanged inputs: the file is left alone. A byte planted in it shows
	// whether it was rewritten.
	plant := func(off int64) {
		f, err := os.OpenFile(out, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("!"), off); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	plant(0)
	planted := concat(baseData, []byte("instance-1"), []byte("x"))
	planted[0] = '!'
	check(planted)

	// The per-instance archive changes (as it does at every start): only
	// the tail is rewritten, the base is not copied again.
	writeFile(t, inst, []byte("instance-two"))
	bump(t, inst)
	want := concat(baseData, []byte("instance-two"), []byte("x"))
	want[0] = '!'
	check(want)

	// The base changes: everything is rewritten.
	baseData = bytes.Repeat([]byte("C"), 1002)
	writeFile(t, base, baseData)
	bump(t, base)
	check(concat(baseData, []byte("instance-two"), []byte("x")))

	// A damaged stamp is not trusted.
	plant(0)
	writeFile(t, out+".stamp", []byte("garbage"))
	check(concat(baseData, []byte("instance-two"), []byte("x")))

	// Fewer inputs: the file shrinks.
	got, err := Prepare(ctx, combined, []string{base, inst})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(got)
	if !bytes.Equal(b, concat(baseData, []byte("instance-two"))) {
		t.Fatalf("after dropping an input: %d bytes", len(b))
	}
}

// bump moves a file's modification time forward, as a rewrite a moment
// later would, on file systems with coarse timestamps too.
func bump(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mt := st.ModTime().Add(time.Second)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}
