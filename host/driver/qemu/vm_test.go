package qemu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPanicLine(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "console")
	earlier := "[ 1.0] Kernel panic - not syncing: from an earlier boot\n"
	writeFile(t, console, []byte(earlier))
	off := int64(len(earlier))
	tests := []struct {
		name, this, want string
	}{
		{"clean shutdown", "[ 2.0] reboot: Power down\n", ""},
		{"panic", "[ 0.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300\n[ 0.9] Kernel Offset: ...\n",
			"Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300"},
		{"panic without newline", "[ 0.9] Kernel panic - not syncing: VFS: Unable to mount root fs",
			"Kernel panic - not syncing: VFS: Unable to mount root fs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, console, []byte(earlier+tt.this))
			if got := panicLine(console, off); got != tt.want {
				t.Errorf("panicLine = %q, want %q", got, tt.want)
			}
		})
	}
	if got := panicLine(filepath.Join(dir, "missing"), 0); got != "" {
		t.Errorf("panicLine of a missing file = %q", got)
	}
}

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
