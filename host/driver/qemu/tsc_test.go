package qemu

import (
	"runtime"
	"testing"
	"time"
)

func TestGuestTSCKHz(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		if got := guestTSCKHz(runtime.GOARCH); got != 1_000_000 {
			t.Fatalf("guestTSCKHz(%s) = %d, want 1000000 (QEMU's nanosecond fallback)", runtime.GOARCH, got)
		}
		return
	}
	if got := guestTSCKHz("arm64"); got != 1_000_000 {
		t.Fatalf("guestTSCKHz(arm64) = %d, want 1000000", got)
	}
	got := guestTSCKHz("amd64")
	// Every x86-64 CPU with an invariant TSC runs it between a few hundred
	// MHz and a few GHz.
	if got < 200_000 || got > 10_000_000 {
		t.Fatalf("guestTSCKHz(amd64) = %d kHz, not a plausible TSC frequency", got)
	}
	// Two measurements agree to well under a percent.
	a, b := measureTSCKHz(10*time.Millisecond), measureTSCKHz(10*time.Millisecond)
	if d := a - b; d*200 > a || -d*200 > a {
		t.Fatalf("two TSC measurements disagree: %d vs %d kHz", a, b)
	}
	t.Logf("TSC %d kHz (measured %d, %d)", got, a, b)
}
