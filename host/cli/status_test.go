package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/lifecycle"
)

func TestPrintStatusState(t *testing.T) {
	since := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		s    lifecycle.Status
		want string
	}{
		{"running", lifecycle.Status{Name: "a", State: lifecycle.StateRunning}, "running"},
		{"paused while idle", lifecycle.Status{Name: "a", State: lifecycle.StateRunning, IdlePausedSince: &since}, "running (paused while idle)"},
		{"stopped", lifecycle.Status{Name: "a", State: lifecycle.StateStopped}, "stopped"},
		{"unresponsive", lifecycle.Status{Name: "a", State: lifecycle.StateUnresponsive, Hint: "see vmbox logs"}, "unresponsive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &app{stdout: &out, stderr: &errb}
			if err := a.printStatus(outputFlags{}, []lifecycle.Status{tt.s}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(out.String(), "\n")
			if len(lines) < 2 || !strings.HasPrefix(strings.TrimLeft(strings.TrimPrefix(lines[1], "a"), " "), tt.want+"  ") {
				t.Fatalf("table:\n%s\nwant state %q", out.String(), tt.want)
			}
			if tt.s.Hint == "" && errb.Len() != 0 || tt.s.Hint != "" && !strings.Contains(errb.String(), tt.s.Hint) {
				t.Fatalf("stderr %q for hint %q", errb.String(), tt.s.Hint)
			}
		})
	}
}
