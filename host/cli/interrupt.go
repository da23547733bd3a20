package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// interruptSignals end a command that is not attached to a container.
var interruptSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// forcedExitAfter is how long an interrupted command may take to wind down
// (close its connection, restore the terminal) before the process exits
// anyway: a command waiting on a silent guest must not outlive Ctrl-C.
const forcedExitAfter = 2 * time.Second

// interruptedError is the cause of a command's context ending on a signal.
type interruptedError struct{ sig os.Signal }

func (e *interruptedError) Error() string { return "interrupted by " + e.sig.String() }

// exitCode is 128+N, as a shell reports a process killed by signal N.
func (e *interruptedError) exitCode() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return api.ExitSignalBase + int(s)
	}
	return api.ExitSignalBase + 2
}

// interrupts turns INT, TERM and HUP into the end of the running command,
// unless a command attached to a remote process has claimed them (then it
// forwards them itself).
type interrupts struct {
	sigs   chan os.Signal
	cancel context.CancelCauseFunc
	stderr io.Writer
	exit   func(int)

	mu       sync.Mutex
	attached int // streams forwarding signals
	stopped  bool
}

func watchInterrupts(cancel context.CancelCauseFunc, stderr io.Writer, exit func(int)) *interrupts {
	in := &interrupts{sigs: make(chan os.Signal, 4), cancel: cancel, stderr: stderr, exit: exit}
	signal.Notify(in.sigs, interruptSignals...)
	go in.loop()
	return in
}

func (in *interrupts) loop() {
	for s := range in.sigs {
		in.mu.Lock()
		skip := in.attached > 0 || in.stopped
		in.mu.Unlock()
		if skip {
			continue
		}
		ie := &interruptedError{sig: s}
		in.cancel(ie)
		time.AfterFunc(forcedExitAfter, func() {
			fmt.Fprintf(in.stderr, "vmbox: %s; exiting without waiting for the guest\n", ie.Error())
			in.exit(ie.exitCode())
		})
	}
}

// attach hands the signals to an attached stream until the returned
// function is called.
func (in *interrupts) attach() (detach func()) {
	in.mu.Lock()
	in.attached++
	in.mu.Unlock()
	return func() {
		in.mu.Lock()
		in.attached--
		in.mu.Unlock()
	}
}

// stop gives the signals back to whoever else handles them (the host
// process mode, which stops its VM on them).
func (in *interrupts) stop() {
	in.mu.Lock()
	in.stopped = true
	in.mu.Unlock()
	signal.Stop(in.sigs)
}
