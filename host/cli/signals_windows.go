//go:build windows

package cli

import (
	"os"
	"time"

	"golang.org/x/term"

	"github.com/vmbox/vmbox/guest/api"
)

var forwardedSignals = []os.Signal{os.Interrupt}

func sshSignalName(s os.Signal) string {
	if s == os.Interrupt {
		return "INT"
	}
	return ""
}

// watchResize polls the console size, since Windows has no SIGWINCH.
func watchResize(fd int, out chan<- api.TermSize) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		lw, lh, _ := term.GetSize(fd)
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if w, h, err := term.GetSize(fd); err == nil && (w != lw || h != lh) {
					lw, lh = w, h
					select {
					case out <- api.TermSize{Rows: uint16(h), Cols: uint16(w)}:
					default:
					}
				}
			}
		}
	}()
	return func() { close(done) }
}
