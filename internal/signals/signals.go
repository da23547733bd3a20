// Package signals owns the names and numbers of the signals that cross the
// host/guest boundary. Containers run on Linux whatever the host OS, so the
// numbers here are Linux's (amd64 and arm64 share them), spelled as plain
// numbers: the package builds on every host OS, including those whose
// syscall package lacks these signals or numbers them differently.
package signals

import (
	"fmt"
	"strconv"
	"strings"
)

// maxSignal is the highest Linux signal number (the last real-time signal).
const maxSignal = 64

// linux lists the named Linux signals. SSH signal names (RFC 4254 6.10)
// are these names without the "SIG" prefix.
var linux = [...]struct {
	num  int
	name string
}{
	{1, "HUP"}, {2, "INT"}, {3, "QUIT"}, {4, "ILL"}, {5, "TRAP"}, {6, "ABRT"},
	{7, "BUS"}, {8, "FPE"}, {9, "KILL"}, {10, "USR1"}, {11, "SEGV"},
	{12, "USR2"}, {13, "PIPE"}, {14, "ALRM"}, {15, "TERM"}, {16, "STKFLT"},
	{17, "CHLD"}, {18, "CONT"}, {19, "STOP"}, {20, "TSTP"}, {21, "TTIN"},
	{22, "TTOU"}, {23, "URG"}, {24, "XCPU"}, {25, "XFSZ"}, {26, "VTALRM"},
	{27, "PROF"}, {28, "WINCH"}, {29, "IO"}, {30, "PWR"}, {31, "SYS"},
}

// Parse returns the Linux number of a signal given by name, with or
// without the "SIG" prefix and in any case ("TERM", "SIGTERM", "sigterm"),
// or by number ("15", 1 to 64).
func Parse(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > maxSignal {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return n, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	for _, sig := range linux {
		if sig.name == name {
			return sig.num, nil
		}
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// Name returns the SSH name ("TERM") of the Linux signal num, or "" when
// the signal has no name.
func Name(num int) string {
	for _, sig := range linux {
		if sig.num == num {
			return sig.name
		}
	}
	return ""
}

// SSHName returns the SSH name of a signal given as Parse accepts it
// ("SIGUSR1" becomes "USR1"), or "" when it has none.
func SSHName(s string) string {
	n, err := Parse(s)
	if err != nil {
		return ""
	}
	return Name(n)
}
