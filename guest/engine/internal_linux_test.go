package engine

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

func TestStatusText(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   api.State
		want string
	}{
		{api.State{Status: "created"}, "Created"},
		{api.State{Status: "running", StartedAt: now.Add(-3 * time.Second)}, "Up 3 seconds"},
		{api.State{Status: "running", StartedAt: now.Add(-90 * time.Minute)}, "Up 2 hours"},
		{api.State{Status: "exited", ExitCode: 3, FinishedAt: now.Add(-2 * time.Minute)}, "Exited (3) 2 minutes ago"},
		{api.State{Status: "exited", ExitCode: 0, FinishedAt: now.Add(-500 * time.Millisecond)}, "Exited (0) Less than a second ago"},
	} {
		if got := statusText(tc.st, now); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestCommandText(t *testing.T) {
	if got := command("sh", []string{"-c", "echo hi"}); got != "sh -c 'echo hi'" {
		t.Errorf("got %q", got)
	}
	if got := command("true", nil); got != "true" {
		t.Errorf("got %q", got)
	}
}

func TestLogWriterAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var got []logEntry
	got = append(got, w.add(streamStdout, []byte("one\ntw"), now)...)
	got = append(got, w.add(streamStderr, []byte("err\n"), now)...)
	got = append(got, w.add(streamStdout, []byte("o\nthree"), now)...)
	got = append(got, w.add(streamStdout, bytes.Repeat([]byte("x"), maxLogLine+5), now)...)
	got = append(got, w.flush(streamStdout, now)...)
	got = append(got, w.flush(streamStderr, now)...)
	w.close()
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Stream+":"+strings.TrimRight(e.Log[:min(len(e.Log), 8)], "x"))
	}
	want := "stdout:one\n|stderr:err\n|stdout:two\n|stdout:three|stdout:" // the long line cut at 16 KiB, its rest flushed
	if strings.Join(lines, "|") != want {
		t.Errorf("entries %q, want %q", strings.Join(lines, "|"), want)
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != len(got) {
		t.Errorf("%d log lines for %d entries", n, len(got))
	}
	var first logEntry
	if err := json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &first); err != nil || first.Log != "one\n" || first.Stream != "stdout" || !first.Time.Equal(now) {
		t.Errorf("first line: %+v %v", first, err)
	}
	all, _ := readLog(path, -1)
	two, _ := readLog(path, 2)
	none, _ := readLog(path, 0)
	if len(all) != len(got) || len(two) != 2 || two[1].Log != got[len(got)-1].Log || len(none) != 0 {
		t.Errorf("tail: all %d two %d none %d", len(all), len(two), len(none))
	}
	if missing, err := readLog(path+".nope", -1); err != nil || missing != nil {
		t.Errorf("missing log: %v %v", missing, err)
	}
}

func TestShouldRestart(t *testing.T) {
	onFailure2 := api.RestartPolicy{Name: api.RestartOnFailure, MaximumRetryCount: 2}
	for _, tt := range []struct {
		name   string
		p      api.RestartPolicy
		code   int
		manual bool
		count  int
		want   bool
	}{
		{"no policy", api.RestartPolicy{}, 1, false, 0, false},
		{"no", api.RestartPolicy{Name: api.RestartNo}, 1, false, 0, false},
		{"always after success", api.RestartPolicy{Name: api.RestartAlways}, 0, false, 5, true},
		{"always stopped by hand", api.RestartPolicy{Name: api.RestartAlways}, 137, true, 0, false},
		{"unless-stopped", api.RestartPolicy{Name: api.RestartUnlessStopped}, 0, false, 0, true},
		{"on-failure after success", onFailure2, 0, false, 0, false},
		{"on-failure within retries", onFailure2, 1, false, 1, true},
		{"on-failure out of retries", onFailure2, 1, false, 2, false},
		{"on-failure without bound", api.RestartPolicy{Name: api.RestartOnFailure}, 1, false, 100, true},
	} {
		if got := shouldRestart(tt.p, tt.code, tt.manual, tt.count); got != tt.want {
			t.Errorf("%s: shouldRestart = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStartsWithEngine(t *testing.T) {
	for _, tt := range []struct {
		name               string
		p                  api.RestartPolicy
		wasRunning, manual bool
		want               bool
	}{
		{"always, even stopped by hand", api.RestartPolicy{Name: api.RestartAlways}, false, true, true},
		{"unless-stopped, exited on its own", api.RestartPolicy{Name: api.RestartUnlessStopped}, false, false, true},
		{"unless-stopped, stopped by hand", api.RestartPolicy{Name: api.RestartUnlessStopped}, false, true, false},
		{"on-failure, interrupted", api.RestartPolicy{Name: api.RestartOnFailure}, true, false, true},
		{"on-failure, exited before", api.RestartPolicy{Name: api.RestartOnFailure}, false, false, false},
		{"no policy, interrupted", api.RestartPolicy{}, true, false, false},
	} {
		if got := startsWithEngine(tt.p, tt.wasRunning, tt.manual, 0); got != tt.want {
			t.Errorf("%s: startsWithEngine = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNextRestartDelay(t *testing.T) {
	for _, tt := range []struct {
		prev, ran, want time.Duration
	}{
		{0, 0, restartFirstDelay},
		{restartFirstDelay, time.Second, 2 * restartFirstDelay},
		{40 * time.Second, time.Second, restartMaxDelay},
		{restartMaxDelay, time.Second, restartMaxDelay},
		{restartMaxDelay, restartReset, restartFirstDelay},
	} {
		if got := nextRestartDelay(tt.prev, tt.ran); got != tt.want {
			t.Errorf("nextRestartDelay(%v, %v) = %v, want %v", tt.prev, tt.ran, got, tt.want)
		}
	}
}
