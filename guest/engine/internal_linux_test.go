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
