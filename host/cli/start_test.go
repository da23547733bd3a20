package cli

import (
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/instance"
)

func TestReadyLine(t *testing.T) {
	started := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		bi   instance.BootInfo
		want string
	}{
		{"hardware", instance.BootInfo{Driver: "qemu", Accelerator: "kvm", Started: started, Ready: started.Add(1240 * time.Millisecond)},
			`Instance "dev" is running (qemu, kvm), ready in 1.2s`},
		{"emulated by choice", instance.BootInfo{Driver: "qemu", Accelerator: "tcg", Started: started, Ready: started.Add(2 * time.Second)},
			`Instance "dev" is running (qemu, tcg), ready in 2.0s`},
		{"emulated for want of KVM", instance.BootInfo{Driver: "qemu", Accelerator: "tcg", EmulatedBecause: "KVM is not usable: there is no /dev/kvm",
			Started: started, Ready: started.Add(2 * time.Second)},
			`Instance "dev" is running (qemu, tcg), ready in 2.0s` + "\n" +
				`Note: the VM's CPU is emulated (tcg), which is several times slower: KVM is not usable: there is no /dev/kvm`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readyLine("dev", &tt.bi); got != tt.want {
				t.Errorf("readyLine = %q, want %q", got, tt.want)
			}
		})
	}
}
