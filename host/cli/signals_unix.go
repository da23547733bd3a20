//go:build !windows

package cli

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/vmbox/vmbox/host/sshclient"
)

var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func sshSignalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGQUIT:
		return "QUIT"
	case syscall.SIGUSR1:
		return "USR1"
	case syscall.SIGUSR2:
		return "USR2"
	}
	return ""
}

// watchResize sends the terminal's size on every SIGWINCH until stop is called.
func watchResize(fd int, out chan<- sshclient.WindowSize) (stop func()) {
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
					case out <- sshclient.WindowSize{Rows: uint32(h), Cols: uint32(w)}:
					default:
					}
				}
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
