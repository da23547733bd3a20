package driver

import (
	"strings"
	"testing"
)

// TestCommonCmdline checks that every word is a parameter the kernel
// takes as given (name=value or a bare flag), with no duplicates, so that
// a driver appending Spec.Cmdline after it can override any of them.
func TestCommonCmdline(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range CommonCmdline() {
		if w == "" || strings.ContainsAny(w, " \t\n\"") {
			t.Errorf("word %q is not one kernel parameter", w)
		}
		name, _, _ := strings.Cut(w, "=")
		if seen[name] {
			t.Errorf("parameter %s given twice", name)
		}
		seen[name] = true
	}
	for _, want := range []string{"watchdog_thresh", "sysctl.vm.compaction_proactiveness", "transparent_hugepage", "sysctl.vm.stat_interval", "psi"} {
		if !seen[want] {
			t.Errorf("no %s: the idle guest costs the host more without it", want)
		}
	}
}
