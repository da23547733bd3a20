package qemu

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareInitrd covers what prepareInitrd adds to initrd.Prepare (whose
// concatenation is tested in host/driver/initrd): several initrds are
// combined into InitrdName in the instance directory, the file the vz
// driver uses too; none or one are passed through.
func TestPrepareInitrd(t *testing.T) {
	ctx := context.Background()
	in := t.TempDir()
	base, inst := filepath.Join(in, "base"), filepath.Join(in, "inst")
	writeFile(t, base, []byte("base!"))
	writeFile(t, inst, []byte("inst"))
	tests := []struct {
		name     string
		inputs   []string
		combined bool   // the result is InitrdName in the instance directory
		want     string // its contents
	}{
		{"none", nil, false, ""},
		{"one", []string{base}, false, "base!"},
		{"two", []string{base, inst}, true, "base!\x00\x00\x00inst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			got, err := prepareInitrd(ctx, dir, tt.inputs)
			if err != nil {
				t.Fatal(err)
			}
			combined := filepath.Join(dir, InitrdName)
			switch {
			case tt.combined && got != combined:
				t.Fatalf("initrd %q, want %s", got, combined)
			case !tt.combined && len(tt.inputs) == 0 && got != "":
				t.Fatalf("initrd %q for no input, want none", got)
			case !tt.combined && len(tt.inputs) == 1 && got != tt.inputs[0]:
				t.Fatalf("initrd %q, want the one input %s", got, tt.inputs[0])
			}
			if !tt.combined {
				if _, err := os.Stat(combined); err == nil {
					t.Fatalf("%s written for %d input(s)", InitrdName, len(tt.inputs))
				}
				if got == "" {
					return
				}
			}
			if b, err := os.ReadFile(got); err != nil || string(b) != tt.want {
				t.Fatalf("initrd holds %q (%v), want %q", b, err, tt.want)
			}
		})
	}
}
