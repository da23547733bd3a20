//go:build !windows

package cli

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/internal/signals"
)

var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// sshSignalName names s by its name, not its number: the guest's numbers
// are Linux's, the host's may differ (darwin's SIGUSR1 is 30).
func sshSignalName(s os.Signal) string {
	if sig, ok := s.(syscall.Signal); ok {
		return signals.SSHName(unix.SignalName(sig))
	}
	return ""
}

// watchResize sends the terminal's size on every SIGWINCH until stop is called.
func watchResize(fd int, out chan<- api.TermSize) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-sigs:
				if w, h, err := term.GetSize(fd); err == nil {
					select {
					case out <- api.TermSize{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
