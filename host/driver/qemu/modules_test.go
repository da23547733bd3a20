package qemu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGuestModulesShipped checks GuestModules against what the built image
// ships (its manifest), so that a guest never waits for a device whose
// driver is missing.
func TestGuestModulesShipped(t *testing.T) {
	checked := 0
	for _, arch := range []string{"amd64", "arm64"} {
		b, err := os.ReadFile(filepath.Join(imageDir(t, arch), "manifest.json"))
		if err != nil {
			continue
		}
		var m struct {
			Modules struct {
				Shipped []string `json:"shipped"`
				Builtin []string `json:"builtin"`
			} `json:"modules"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s manifest: %v", arch, err)
		}
		d := New(Options{})
		// virtio_blk: the guest loads it itself to mount its data disk.
		for _, mod := range slices.Concat(d.GuestModules(arch), d.GuestLateModules(arch), []string{"virtio_blk"}) {
			if !slices.Contains(m.Modules.Shipped, mod) && !slices.Contains(m.Modules.Builtin, mod) {
				t.Errorf("%s image ships no module %s", arch, mod)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Skip("no image built (build/image/<arch>/manifest.json)")
	}
}
