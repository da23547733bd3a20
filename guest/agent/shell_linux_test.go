package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShellWaitsForTheDataDisk checks that a shell runs only once the data
// disk is mounted, and still runs, with a warning, when it failed.
func TestShellWaitsForTheDataDisk(t *testing.T) {
	run := func(a *Agent) (code chan int, stdout, stderr *lockedBuffer) {
		stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
		s := &Session{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr}
		code = make(chan int, 1)
		go func() { code <- a.shell(context.Background(), s, api.ShellArgs{Argv: []string{"echo", "ran"}}) }()
		return code, stdout, stderr
	}

	t.Run("waits", func(t *testing.T) {
		mounted := make(chan struct{})
		a := &Agent{WaitDataDisk: func(ctx context.Context) error {
			<-mounted
			return nil
		}}
		code, stdout, _ := run(a)
		time.Sleep(100 * time.Millisecond)
		if out := stdout.String(); out != "" {
			t.Fatalf("the command ran before the disk was mounted: %q", out)
		}
		close(mounted)
		if c := <-code; c != 0 || stdout.String() != "ran\n" {
			t.Fatalf("exit %d, stdout %q", c, stdout.String())
		}
	})
	t.Run("disk failed", func(t *testing.T) {
		a := &Agent{WaitDataDisk: func(context.Context) error { return errors.New("no disk here") }}
		code, stdout, stderr := run(a)
		if c := <-code; c != 0 || stdout.String() != "ran\n" {
			t.Fatalf("exit %d, stdout %q", c, stdout.String())
		}
		if !strings.Contains(stderr.String(), "warning: no disk here") {
			t.Errorf("stderr %q does not warn about the disk", stderr.String())
		}
	})
}
