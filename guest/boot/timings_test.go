package boot

import (
	"strings"
	"testing"
	"time"
)

func TestTimings(t *testing.T) {
	var nilT *Timings
	nilT.Add("ignored", time.Now())
	if nilT.List() != nil || nilT.String() != "" {
		t.Error("nil Timings recorded something")
	}
	tm := &Timings{}
	t0 := time.Now().Add(-time.Second)
	tm.Add("second", t0.Add(10*time.Millisecond))
	tm.Add("first", t0)
	l := tm.List()
	if len(l) != 2 || l[0].Step != "first" || l[1].Step != "second" {
		t.Fatalf("List = %+v", l)
	}
	if l[0].Duration < time.Second {
		t.Errorf("duration %v shorter than the time since start", l[0].Duration)
	}
	s := tm.String()
	if lines := strings.Split(strings.TrimSpace(s), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "+0s") || !strings.HasSuffix(lines[1], " second") || !strings.Contains(lines[1], "+10ms") {
		t.Errorf("String =\n%s", s)
	}
}
