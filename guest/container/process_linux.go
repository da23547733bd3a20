package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
)

// Process is a running container init or exec'd process. Stdin is set when
// the process was given a stdin pipe, Stdout and Stderr unless it has a
// terminal, whose master is then Pty (reads are the terminal's output,
// writes its input). The caller reads the streams to their end and closes
// them.
type Process struct {
	Pid    int
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	Stderr io.ReadCloser
	Pty    *os.File

	proc   *os.Process
	onExit func(*Exit)
	once   sync.Once
	done   chan struct{}
	exit   Exit
	err    error
}

func newProcess(proc *os.Process, st *stdioSet, pty *os.File, onExit func(*Exit)) *Process {
	p := &Process{Pid: proc.Pid, proc: proc, Pty: pty, onExit: onExit, done: make(chan struct{})}
	if st.parentIn != nil {
		p.Stdin = st.parentIn
	}
	if st.parentOut != nil {
		p.Stdout, p.Stderr = st.parentOut, st.parentErr
	}
	return p
}

// Wait waits for the process to exit. It may be called any number of times
// from any goroutine; all get the same answer.
func (p *Process) Wait() (Exit, error) {
	p.once.Do(func() {
		defer close(p.done)
		state, err := p.proc.Wait()
		if err != nil {
			p.err = fmt.Errorf("wait: %w", err)
			return
		}
		ws, _ := state.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			p.exit.Signal = ws.Signal()
			p.exit.Code = ExitSignalBase + int(ws.Signal())
		default:
			p.exit.Code = ws.ExitStatus()
		}
		if ru, ok := state.SysUsage().(*syscall.Rusage); ok {
			p.exit.UserTime = ru.Utime.Nano()
			p.exit.SysTime = ru.Stime.Nano()
		}
		if p.onExit != nil {
			p.onExit(&p.exit)
		}
	})
	<-p.done
	return p.exit, p.err
}

// Done is closed once Wait has returned.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process. A container's init, as PID 1 of its pid
// namespace, only reacts to signals it handles (and SIGKILL).
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return ErrNotRunning
	default:
	}
	if err := p.proc.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal %d: %w", sig, err)
	}
	return nil
}

// Resize sets the terminal's window size.
func (p *Process) Resize(size api.TermSize) error {
	if p.Pty == nil {
		return errors.New("the process has no terminal")
	}
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
	if err := unix.IoctlSetWinsize(int(p.Pty.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}
