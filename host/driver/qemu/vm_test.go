package qemu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLastLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	writeFile(t, p, []byte("qemu-system-x86_64: first\n\nqemu-system-x86_64: -drive x: Failed to get \"write\" lock\nIs another process using the image [d]?\n\n"))
	want := `qemu-system-x86_64: -drive x: Failed to get "write" lock / Is another process using the image [d]?`
	if got := lastLines(p, 2); got != want {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
	if got := lastLines(filepath.Join(t.TempDir(), "none"), 2); got != "" {
		t.Errorf("lastLines of a missing file = %q", got)
	}
	os.Remove(p)
}
