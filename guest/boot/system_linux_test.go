//go:build linux

package boot

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func fakeCPUs(t *testing.T, present string, online map[int]bool) string {
	t.Helper()
	dir := t.TempDir()
	ids, err := parseCPUList(present)
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, c := range ids {
		if c == 0 {
			on = append(on, "0")
			continue // cpu0 has no online file on x86
		}
		if err := os.MkdirAll(filepath.Join(dir, "cpu"+strconv.Itoa(c)), 0o755); err != nil {
			t.Fatal(err)
		}
		v := "0\n"
		if online[c] {
			v = "1\n"
			on = append(on, strconv.Itoa(c))
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu"+strconv.Itoa(c), "online"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "present"), []byte(present+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "online"), []byte(strings.Join(on, ",")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cpuOnline(t *testing.T, dir string, c int) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cpu"+strconv.Itoa(c), "online"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) == "1"
}

func TestBringCPUsOnline(t *testing.T) {
	tests := []struct {
		name    string
		present string
		online  map[int]bool
		want    int
		brought int
		onAfter []int
		offAft  []int
	}{
		{"all of four", "0-3", nil, 0, 3, []int{1, 2, 3}, nil},
		{"two of four", "0-3", nil, 2, 1, []int{1}, []int{2, 3}},
		{"more than present", "0-1", nil, 8, 1, []int{1}, nil},
		{"already online", "0-3", map[int]bool{1: true, 2: true, 3: true}, 0, 0, []int{1, 2, 3}, nil},
		{"gap filled in order", "0-3", map[int]bool{2: true}, 3, 1, []int{1, 2}, []int{3}},
		{"single cpu", "0", nil, 0, 0, nil, nil},
	}
	for _, tt := range tests {
		dir := fakeCPUs(t, tt.present, tt.online)
		n, err := onlineCPUs(dir, tt.want)
		if err != nil || n != tt.brought {
			t.Errorf("%s: onlineCPUs = %d, %v; want %d", tt.name, n, err, tt.brought)
		}
		for _, c := range tt.onAfter {
			if !cpuOnline(t, dir, c) {
				t.Errorf("%s: cpu%d offline", tt.name, c)
			}
		}
		for _, c := range tt.offAft {
			if cpuOnline(t, dir, c) {
				t.Errorf("%s: cpu%d online", tt.name, c)
			}
		}
	}
	if _, err := onlineCPUs(t.TempDir(), 0); err == nil {
		t.Error("no sysfs: no error")
	}
}

func TestBootClockTarget(t *testing.T) {
	host := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		host   time.Time
		uptime time.Duration
		now    time.Time
		want   time.Time
		set    bool
	}{
		{"no rtc", host, 900 * time.Millisecond, time.Unix(2, 0), host.Add(900 * time.Millisecond), true},
		{"rtc behind", host, time.Second, host.Add(-time.Hour), host.Add(time.Second), true},
		{"rtc right", host, time.Second, host.Add(time.Second + 200*time.Millisecond), host.Add(time.Second), false},
		{"rtc slightly behind", host, time.Second, host.Add(500 * time.Millisecond), host.Add(time.Second), false},
		{"rtc ahead", host, time.Second, host.Add(time.Hour), host.Add(time.Second), false},
		{"no boot time", time.Time{}, time.Second, time.Unix(2, 0), time.Time{}, false},
	}
	for _, tt := range tests {
		got, set := bootClockTarget(tt.host, tt.uptime, tt.now)
		if !got.Equal(tt.want) || set != tt.set {
			t.Errorf("%s: = %v, %v; want %v, %v", tt.name, got, set, tt.want, tt.set)
		}
	}
}

func TestHasVirtioDevice(t *testing.T) {
	dir := t.TempDir()
	for name, id := range map[string]string{"virtio0": "0x0003\n", "virtio1": "0x0001\n", "virtio2": "0x0013\n"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "device"), []byte(id), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !hasVirtioDevice(dir, virtioIDVsock) {
		t.Error("vsock device not found")
	}
	if !hasVirtioDevice(dir, 3) {
		t.Error("console device not found")
	}
	if hasVirtioDevice(dir, 2) {
		t.Error("found a block device that is not there")
	}
	if hasVirtioDevice(filepath.Join(dir, "absent"), virtioIDVsock) {
		t.Error("found a device on a missing bus")
	}
}
