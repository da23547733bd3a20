//go:build !windows

package hostproc

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/instance"
)

func TestListenPrivateSocket(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// leave puts something at path and returns a check that it
		// survived, for the cases that must leave it alone.
		leave   func(t *testing.T, path string) func() error
		wantErr string
	}{
		{name: "nothing there"},
		{name: "stale socket of a killed run", leave: func(t *testing.T, path string) func() error {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
			return nil
		}},
		{name: "live socket", wantErr: "another process serves", leave: func(t *testing.T, path string) func() error {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return func() error {
				c, err := net.Dial("unix", path)
				if err == nil {
					c.Close()
				}
				return err
			}
		}},
		{name: "regular file", wantErr: "is not a socket", leave: func(t *testing.T, path string) func() error {
			if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
			return func() error {
				b, err := os.ReadFile(path)
				if err == nil && string(b) != "keep" {
					err = errors.New("content changed")
				}
				return err
			}
		}},
		{name: "directory", wantErr: "is not a socket", leave: func(t *testing.T, path string) func() error {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			return func() error { _, err := os.ReadDir(path); return err }
		}},
		{name: "symlink to a stale socket", wantErr: "is not a socket", leave: func(t *testing.T, path string) func() error {
			target := filepath.Join(filepath.Dir(path), "target.sock")
			l, err := net.Listen("unix", target)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return func() error { _, err := os.Readlink(path); return err }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "docker.sock")
			var survived func() error
			if tc.leave != nil {
				survived = tc.leave(t, path)
			}
			l, err := listenPrivateSocket(ctx, path)
			if tc.wantErr != "" {
				if err == nil {
					l.Close()
					t.Fatalf("listened over it; want an error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q; want one naming %s and containing %q", err, path, tc.wantErr)
				}
				if err := survived(); err != nil {
					t.Errorf("what was there did not survive: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want a socket with 0600", fi.Mode())
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := <-accepted; err != nil {
				t.Fatal(err)
			}
			l.Close()
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket left after Close: %v", err)
			}
		})
	}
}

// TestListenPrivateSocketUmask: 0600 whatever the umask lets through.
func TestListenPrivateSocketUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "docker.sock")
	l, err := listenPrivateSocket(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode(), err)
	}
}

// TestDockerSocketEndsWithHostProcess: the instance's docker.sock relays
// while the host process serves and, once its context ends, is gone and
// its connections closed, so clients see what a stopped engine gives them.
func TestDockerSocketEndsWithHostProcess(t *testing.T) {
	guest, err := net.Listen("unix", filepath.Join(t.TempDir(), "guest-docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	go echoLines(guest)
	opened := new(atomic.Int32)
	conn, inst := agentConn(t, streamLocalAgent(guest.Addr().String(), opened))
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := listenDocker(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sock := inst.Path(instance.DockerSocketFile)
	if got := "unix://" + sock; got != inst.DockerHost() {
		t.Fatalf("listening on %s, but DockerHost is %s", got, inst.DockerHost())
	}
	served := make(chan error, 1)
	go func() { served <- NewRelay(keys.Host, keys.ClientPublic, conn).ServeDocker(ctx, l) }()

	c := dial(t, sock)
	c.Write([]byte("hello\n"))
	buf := make([]byte, len("echo hello\n"))
	if _, err := c.Read(buf); err != nil || string(buf) != "echo hello\n" {
		t.Fatalf("relay answered %q, %v", buf, err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("ServeDocker: %v", err)
	}
	if got := readAll(t, c); got != "" {
		t.Fatalf("after the end: %q", got)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("docker.sock left behind: %v", err)
	}
	d := net.Dialer{Timeout: time.Second}
	if _, err := d.Dial("unix", sock); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after the end = %v, want no such file or connection refused", err)
	}
}
