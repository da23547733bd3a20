package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"

	"golang.org/x/term"

	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/sshclient"
)

// streamOptions say how an operation's streams meet this process's.
type streamOptions struct {
	stdin bool // forward our stdin
	tty   bool // ask for a terminal; puts ours in raw mode
	// attached: the operation is a process (run, exec, shell) that takes
	// this process's signals; otherwise a signal ends the command here.
	attached bool
	// bulk: the operation may move much data, or a terminal's keystrokes
	// (sshclient.IO.Bulk).
	bulk bool
}

// stream runs an operation with this process's streams attached and returns
// its exit code. Without a terminal, signals this process receives are
// forwarded to the remote process (Ctrl-C reaches the container); with one,
// the terminal is raw, so Ctrl-C travels as a byte, and size changes follow.
func (a *app) stream(ctx context.Context, c *sshclient.Client, op string, args any, o streamOptions) (int, error) {
	st := sshclient.IO{Stdout: a.stdout, Stderr: a.stderr, Bulk: o.bulk}
	if o.stdin {
		st.Stdin = a.stdin
	}
	if o.tty {
		in, _ := a.stdin.(*os.File)
		out, _ := a.stdout.(*os.File)
		tty := &sshclient.TTY{Term: envOr("TERM", "xterm")}
		if out != nil {
			if w, h, err := term.GetSize(int(out.Fd())); err == nil {
				tty.Size = api.TermSize{Rows: uint16(h), Cols: uint16(w)}
			}
			resize := make(chan api.TermSize, 1)
			stop := watchResize(int(out.Fd()), resize)
			defer stop()
			tty.Resize = resize
		}
		if in != nil && term.IsTerminal(int(in.Fd())) {
			if state, err := term.MakeRaw(int(in.Fd())); err == nil {
				defer term.Restore(int(in.Fd()), state)
			}
		}
		st.TTY = tty
	} else if o.attached {
		if a.interrupts != nil {
			defer a.interrupts.attach()()
		}
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, forwardedSignals...)
		defer signal.Stop(sigs)
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		names := make(chan string, 4)
		go func() {
			ints := 0
			for s := range sigs {
				if s == os.Interrupt {
					if ints++; ints == abandonAfterInterrupts {
						cancel(errAbandoned)
						return
					}
				}
				if n := sshSignalName(s); n != "" {
					select {
					case names <- n:
					default:
					}
				}
			}
		}()
		st.Signals = names
	}
	code, err := c.Stream(ctx, op, args, st)
	if errors.Is(context.Cause(ctx), errAbandoned) {
		return 0, errAbandoned
	}
	return code, err
}

// abandonAfterInterrupts is the Ctrl-C that makes an attached client stop
// waiting for the remote process, as docker's does.
const abandonAfterInterrupts = 3

// errAbandoned ends an attached command whose user gave up on it.
var errAbandoned = &ExitError{Code: api.ExitEngineError, Message: "gave up waiting after 3 interrupts; the container may still be running"}

// terminalSize is this process's terminal size as [rows, cols], or zeros.
func terminalSize() [2]uint {
	for _, f := range []*os.File{os.Stdout, os.Stdin, os.Stderr} {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil {
			return [2]uint{uint(h), uint(w)}
		}
	}
	return [2]uint{}
}
