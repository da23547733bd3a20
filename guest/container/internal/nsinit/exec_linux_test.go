package nsinit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExecRetryingBusy(t *testing.T) {
	tests := []struct {
		name      string
		busyTimes int   // ETXTBSY this many times, then final
		final     error // what exec returns after that
		want      error
		wantCalls int
	}{
		{"not busy", 0, unix.ENOENT, unix.ENOENT, 1},
		{"busy for a moment", 3, unix.EACCES, unix.EACCES, 4},
		{"busy for ever", 1 << 30, nil, unix.ETXTBSY, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := execRetryingBusy(func() error {
				calls++
				if calls <= tt.busyTimes {
					return unix.ETXTBSY
				}
				return tt.final
			})
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if tt.wantCalls >= 0 && calls != tt.wantCalls {
				t.Errorf("exec called %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

// execBusyChildEnv makes the test binary a child that execs the file it
// names through execRetryingBusy.
const execBusyChildEnv = "NSINIT_TEST_EXEC_BUSY"

func init() {
	if p := os.Getenv(execBusyChildEnv); p != "" {
		err := execRetryingBusy(func() error { return unix.Exec(p, []string{p}, nil) })
		fmt.Fprintf(os.Stderr, "exec %s: %v\n", p, err)
		os.Exit(3)
	}
}

// TestExecWhileAWriterCloses runs a script that a writer still holds open
// when the exec starts and closes 100 ms later: the exec fails with
// ETXTBSY at first and then runs the script.
func TestExecWhileAWriterCloses(t *testing.T) {
	script := filepath.Join(t.TempDir(), "run.sh")
	f, err := os.OpenFile(script, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("#!/bin/sh\necho ran\n"); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), execBusyChildEnv+"="+script)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	f.Close()
	if err := cmd.Wait(); err != nil || out.String() != "ran\n" {
		t.Fatalf("exec of a script whose writer closed late: %v, stdout %q, stderr %q", err, out.String(), stderr.String())
	}
}
