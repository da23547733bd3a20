package agent

import "testing"

func TestAgentProcs(t *testing.T) {
	for _, c := range []struct {
		list string
		want int
	}{{"0-3", 4}, {"0", 1}, {"0-3,8-9", 6}, {"0,2,4", 3}, {"", 0}} {
		if got := countCPUList(c.list); got != c.want {
			t.Errorf("countCPUList(%q) = %d, want %d", c.list, got, c.want)
		}
	}
	if got := agentProcs(1); got != minAgentProcs {
		t.Errorf("agentProcs(1) = %d, want %d", got, minAgentProcs)
	}
	if got := agentProcs(16); got != 16 {
		t.Errorf("agentProcs(16) = %d", got)
	}
}
