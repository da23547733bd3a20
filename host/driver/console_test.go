package driver

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPanicLine(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "console")
	earlier := "[ 1.0] Kernel panic - not syncing: from an earlier boot\n"
	off := int64(len(earlier))
	tests := []struct {
		name, this, want string
	}{
		{"clean shutdown", "[ 2.0] reboot: Power down\n", ""},
		{"booting", "[    0.5] booting\n", ""},
		{"nothing yet", "", ""},
		{"panic", "[ 0.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300\n[ 0.9] Kernel Offset: ...\n",
			"Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300"},
		{"panic after boot output", "[    0.5] booting\n[    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n[    2.1] ---[ end ]---\n",
			"Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"},
		{"panic without newline", "[ 0.9] Kernel panic - not syncing: VFS: Unable to mount root fs",
			"Kernel panic - not syncing: VFS: Unable to mount root fs"},
		{"the last panic", "[ 0.9] Kernel panic - not syncing: first\n[ 1.0] Kernel panic - not syncing: second\n",
			"Kernel panic - not syncing: second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, console, []byte(earlier+tt.this))
			if got := PanicLine(console, off); got != tt.want {
				t.Errorf("PanicLine = %q, want %q", got, tt.want)
			}
		})
	}
	if got := PanicLine(filepath.Join(dir, "missing"), 0); got != "" {
		t.Errorf("PanicLine of a missing file = %q", got)
	}
}

func TestReadTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	writeFile(t, p, []byte("0123456789"))
	tests := []struct {
		offset, limit int64
		want          string
	}{
		{0, 100, "0123456789"},
		{0, 4, "6789"},
		{3, 100, "3456789"},
		{7, 4, "789"},
		{2, 4, "6789"},
		{10, 4, ""},
		{20, 4, ""},
		{0, 0, ""},
	}
	for _, tt := range tests {
		got, err := ReadTail(p, tt.offset, tt.limit)
		if err != nil || string(got) != tt.want {
			t.Errorf("ReadTail(offset %d, limit %d) = %q, %v; want %q", tt.offset, tt.limit, got, err, tt.want)
		}
	}
	if _, err := ReadTail(filepath.Join(t.TempDir(), "missing"), 0, 10); !os.IsNotExist(err) {
		t.Errorf("ReadTail of a missing file: %v, want not-exist", err)
	}
}
