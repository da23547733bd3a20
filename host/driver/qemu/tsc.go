package qemu

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// guestTSCKHz returns the frequency, in kHz, at which an x86 guest's TSC
// ticks under TCG on this host, or 0 if it cannot be known.
//
// TCG's RDTSC returns QEMU's cpu_get_host_ticks(): the host's own TSC on
// x86-64 hosts, and on hosts without a case for their architecture (arm64
// among them) the host's monotonic clock in nanoseconds, i.e. exactly 1 GHz.
func guestTSCKHz(hostArch string) int64 {
	if hostArch != "amd64" {
		return 1_000_000
	}
	// Some kernels publish the TSC frequency they calibrated.
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return measureTSCKHz(10 * time.Millisecond)
}

// measureTSCKHz counts TSC ticks against the monotonic clock over about d.
// Each end is read between two clock readings and the one with the
// narrowest bracket kept, so a preemption between the readings does not
// skew the result; over 10 ms the error is a few parts per million, which
// matters because the guest keeps time by this value for as long as it runs.
func measureTSCKHz(d time.Duration) int64 {
	if !haveTSC {
		return 0
	}
	sample := func() (time.Time, uint64) {
		var best time.Duration = 1 << 62
		var at time.Time
		var ticks uint64
		for i := 0; i < 5; i++ {
			a := time.Now()
			c := rdtsc()
			b := time.Now()
			if w := b.Sub(a); w < best {
				best, at, ticks = w, a.Add(w/2), c
			}
		}
		return at, ticks
	}
	t0, c0 := sample()
	time.Sleep(d)
	t1, c1 := sample()
	ns := t1.Sub(t0).Nanoseconds()
	if ns <= 0 || c1 <= c0 {
		return 0
	}
	// ticks per ns * 1e6 = kHz, rounded to the nearest kHz.
	return int64((float64(c1-c0)*1e6)/float64(ns) + 0.5)
}
