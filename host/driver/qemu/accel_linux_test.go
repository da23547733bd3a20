package qemu

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKVMHardware(t *testing.T) {
	tests := []struct {
		name    string
		modules []string
		goarch  string
		want    bool
	}{
		{"intel", []string{"kvm", "kvm_intel"}, "amd64", true},
		{"amd", []string{"kvm", "kvm_amd"}, "amd64", true},
		{"pvm only", []string{"kvm", "kvm_pvm"}, "amd64", false},
		{"no vendor module", []string{"kvm"}, "amd64", false},
		{"arm64 has none", []string{"kvm"}, "arm64", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, m := range tt.modules {
				if err := os.Mkdir(filepath.Join(dir, m), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if got := kvmHardware(dir, tt.goarch); got != tt.want {
				t.Errorf("kvmHardware(%v, %s) = %v, want %v", tt.modules, tt.goarch, got, tt.want)
			}
		})
	}
}
