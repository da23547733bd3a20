package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQMP drives a real QEMU (no guest: -machine none) through the
// client: status, pause, resume, an unknown command, and quit.
func TestQMP(t *testing.T) {
	sock, exited := startBareQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	status := func() string {
		t.Helper()
		var ret json.RawMessage
		var err error
		// The socket appears once QEMU has started.
		for i := 0; i < 100; i++ {
			if ret, err = QMP(ctx, sock, "query-status", nil); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("query-status: %v", err)
		}
		var s struct{ Status string }
		if err := json.Unmarshal(ret, &s); err != nil {
			t.Fatalf("query-status reply %s: %v", ret, err)
		}
		return s.Status
	}
	if got := status(); got != "running" {
		t.Fatalf("status = %q, want running", got)
	}
	// stop and cont also send STOP and RESUME events on the connection,
	// which the client must skip.
	for _, step := range []struct{ command, want string }{{"stop", "paused"}, {"cont", "running"}} {
		if _, err := QMP(ctx, sock, step.command, nil); err != nil {
			t.Fatalf("%s: %v", step.command, err)
		}
		if got := status(); got != step.want {
			t.Fatalf("status after %s = %q, want %q", step.command, got, step.want)
		}
	}
	// A command with arguments, answered with an error.
	_, err := QMP(ctx, sock, "human-monitor-command-nonexistent", map[string]string{"command-line": "info status"})
	var qerr *QMPError
	if !errors.As(err, &qerr) || qerr.Class != "CommandNotFound" {
		t.Fatalf("unknown command: err = %v, want a CommandNotFound QMPError", err)
	}
	ret, err := QMP(ctx, sock, "human-monitor-command", map[string]string{"command-line": "info status"})
	if err != nil || !strings.Contains(string(ret), "running") {
		t.Fatalf("human-monitor-command = %s, %v; want the status", ret, err)
	}
	if _, err := QMP(ctx, sock, "quit", nil); err != nil {
		t.Fatalf("quit: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("QEMU after quit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("QEMU still running 30 s after quit")
	}
}

// startBareQEMU runs QEMU without a guest (-machine none) with args and a
// QMP socket, killed when the test ends; exited receives how it ended.
func startBareQEMU(t *testing.T, args ...string) (sock string, exited <-chan error) {
	t.Helper()
	needQEMU(t, "amd64")
	bin, err := New(Options{}).binary("amd64")
	if err != nil {
		t.Fatal(err)
	}
	sock = QMPSocket(t.TempDir())
	cmd := exec.Command(bin, append([]string{"-machine", "none", "-nodefaults", "-display", "none",
		"-qmp", "unix:" + Escape(sock) + ",server=on,wait=off"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	done := make(chan struct{})
	go func() { ch <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return sock, ch
}

// TestQMPContext checks that ctx bounds a QMP exchange with a peer that
// never greets.
func TestQMPContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = QMP(ctx, sock, "query-status", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("QMP = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("QMP took %v after its deadline", d)
	}
}
