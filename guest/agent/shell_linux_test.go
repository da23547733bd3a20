package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/api"
)

// TestShellWaitsForTheDataDisk checks that a shell runs only once the data
// disk is mounted, and still runs, with a warning, when it failed.
func TestShellWaitsForTheDataDisk(t *testing.T) {
	// run starts a shell that leaves a file behind; the buffers are read
	// only once the shell has returned.
	run := func(a *Agent) (code chan int, stderr *bytes.Buffer, ran string) {
		ran = filepath.Join(t.TempDir(), "ran")
		stderr = &bytes.Buffer{}
		s := &Session{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: stderr}
		code = make(chan int, 1)
		go func() {
			code <- a.shell(context.Background(), s, api.ShellArgs{Argv: []string{"touch", ran}})
		}()
		return code, stderr, ran
	}

	t.Run("waits", func(t *testing.T) {
		mounted := make(chan struct{})
		a := &Agent{WaitDataDisk: func(ctx context.Context) error {
			<-mounted
			return nil
		}}
		code, _, ran := run(a)
		time.Sleep(100 * time.Millisecond)
		if _, err := os.Stat(ran); err == nil {
			t.Fatal("the command ran before the disk was mounted")
		}
		close(mounted)
		if c := <-code; c != 0 {
			t.Fatalf("exit %d", c)
		}
		if _, err := os.Stat(ran); err != nil {
			t.Fatalf("the command did not run once the disk was mounted: %v", err)
		}
	})
	t.Run("disk failed", func(t *testing.T) {
		a := &Agent{WaitDataDisk: func(context.Context) error { return errors.New("no disk here") }}
		code, stderr, ran := run(a)
		if c := <-code; c != 0 {
			t.Fatalf("exit %d, stderr %q", c, stderr)
		}
		if _, err := os.Stat(ran); err != nil {
			t.Errorf("the command did not run: %v", err)
		}
		if !strings.Contains(stderr.String(), "warning: no disk here") {
			t.Errorf("stderr %q does not warn about the disk", stderr)
		}
	})
}
