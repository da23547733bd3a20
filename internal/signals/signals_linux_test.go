package signals

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTableMatchesKernel checks the table against the build's own Linux
// signal numbers: the host side has no such source to check against.
func TestTableMatchesKernel(t *testing.T) {
	for num := 1; num <= 31; num++ {
		kernel := unix.SignalName(syscall.Signal(num))
		if got := "SIG" + Name(num); got != kernel {
			t.Errorf("signal %d: table %q, kernel %q", num, got, kernel)
		}
	}
}
