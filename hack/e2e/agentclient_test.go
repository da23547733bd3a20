//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmbox/vmbox/guest/agent"
	"github.com/vmbox/vmbox/guest/api"
	"github.com/vmbox/vmbox/host/hostproc"
	"github.com/vmbox/vmbox/host/instance"
	"github.com/vmbox/vmbox/host/sshclient"
)

// testAgent serves a real agent on a Unix socket and returns the socket
// path and the keys that reach it.
func testAgent(t *testing.T) (string, *instance.Keys) {
	t.Helper()
	store := instance.Store{Root: t.TempDir()}
	inst, err := store.Create(instance.Config{Name: "t", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(inst.Dir, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.ServeLocal(ctx, agent.LocalOptions{
			Listen:        "unix://" + socket,
			HostKey:       inst.Path(instance.HostKeyFile),
			AuthorizedKey: inst.Path(instance.ClientKeyFile + ".pub"),
			DataDir:       filepath.Join(inst.Dir, "data"),
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	waitSocket(t, socket)
	return socket, keys
}

func waitSocket(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", path)
}

// testRelay puts a host-process relay in front of the agent, as a running
// instance has: one upstream SSH connection shared by all clients.
func testRelay(t *testing.T, agentSocket string, keys *instance.Keys) string {
	t.Helper()
	up, err := sshclient.Dial(context.Background(), agentSocket, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	socket := filepath.Join(t.TempDir(), "relay.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go hostproc.NewRelay(keys.Host, keys.ClientPublic, up.SSH()).Serve(ctx, l)
	return socket
}

// paths are the two ways a CLI reaches an agent.
func paths(t *testing.T) map[string]func() (*sshclient.Client, error) {
	socket, keys := testAgent(t)
	relay := testRelay(t, socket, keys)
	return map[string]func() (*sshclient.Client, error){
		"direct": func() (*sshclient.Client, error) { return sshclient.Dial(context.Background(), socket, keys) },
		"relay":  func() (*sshclient.Client, error) { return sshclient.Dial(context.Background(), relay, keys) },
	}
}

func TestVersion(t *testing.T) {
	for name, dial := range paths(t) {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var v api.Version
			if err := c.Call(context.Background(), api.OpVersion, nil, &v); err != nil {
				t.Fatal(err)
			}
			if v.Os != "linux" || v.Arch != runtime.GOARCH || v.KernelVersion == "" || v.GoVersion != runtime.Version() {
				t.Fatalf("unexpected version %+v", v)
			}
		})
	}
}

func TestShellStreamsAndExitCodes(t *testing.T) {
	cases := []struct {
		name       string
		argv       []string
		stdin      string
		wantCode   int
		wantOut    string
		wantErrSub string
	}{
		{"true", []string{"true"}, "", 0, "", ""},
		{"exit 3", []string{"sh", "-c", "exit 3"}, "", 3, "", ""},
		{"stdin to stdout, stderr apart", []string{"sh", "-c", "cat; echo oops >&2"}, "hello\n", 0, "hello\n", "oops"},
		{"not found", []string{"no-such-command-xyz"}, "", api.ExitNotFound, "", "command not found"},
		{"killed by signal", []string{"sh", "-c", "kill -9 $$"}, "", api.ExitSignalBase + 9, "", ""},
	}
	for name, dial := range paths(t) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				c, err := dial()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var out, errb bytes.Buffer
				code, err := c.Stream(context.Background(), api.OpShell, api.ShellArgs{Argv: tc.argv},
					sshclient.IO{Stdin: strings.NewReader(tc.stdin), Stdout: &out, Stderr: &errb})
				if err != nil {
					t.Fatal(err)
				}
				if code != tc.wantCode || out.String() != tc.wantOut || !strings.Contains(errb.String(), tc.wantErrSub) {
					t.Fatalf("got code %d stdout %q stderr %q; want %d %q %q", code, out.String(), errb.String(), tc.wantCode, tc.wantOut, tc.wantErrSub)
				}
				if tc.wantErrSub == "" && errb.Len() != 0 {
					t.Fatalf("unexpected stderr %q", errb.String())
				}
			})
		}
	}
}

func TestSignalReachesProcess(t *testing.T) {
	for name, dial := range paths(t) {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sigs := make(chan string, 1)
			var out bytes.Buffer
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() {
				// Signal once the shell has installed its trap and said so.
				buf := make([]byte, 6)
				io.ReadFull(pr, buf)
				sigs <- "TERM"
				io.Copy(io.Discard, pr)
			}()
			code, err := c.Stream(context.Background(), api.OpShell,
				api.ShellArgs{Argv: []string{"sh", "-c", `trap "echo got; exit 42" TERM; echo ready; while true; do sleep 0.05; done`}},
				sshclient.IO{Stdout: io.MultiWriter(&out, pw), Signals: sigs})
			if err != nil {
				t.Fatal(err)
			}
			if code != 42 || !strings.Contains(out.String(), "got") {
				t.Fatalf("code %d output %q, want 42 and 'got'", code, out.String())
			}
		})
	}
}

func TestTerminal(t *testing.T) {
	for name, dial := range paths(t) {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var out bytes.Buffer
			tty := &sshclient.TTY{Term: "xterm", Size: api.TermSize{Rows: 33, Cols: 111}}
			code, err := c.Stream(context.Background(), api.OpShell,
				api.ShellArgs{Argv: []string{"sh", "-c", "stty size; test -t 0 && echo isatty; exit 5"}},
				sshclient.IO{Stdout: &out, TTY: tty})
			if err != nil {
				t.Fatal(err)
			}
			if code != 5 || !strings.Contains(out.String(), "33 111") || !strings.Contains(out.String(), "isatty") {
				t.Fatalf("code %d output %q", code, out.String())
			}
		})
	}
}

func TestUnknownOperationIsEngineError(t *testing.T) {
	for name, dial := range paths(t) {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Call(context.Background(), "no-such-op", nil, nil)
			var re *sshclient.RemoteError
			if !errors.As(err, &re) || re.Code != api.ExitEngineError || !strings.Contains(re.Message, "no-such-op") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestConcurrentOperationsShareOneConnection(t *testing.T) {
	dial := paths(t)["relay"]
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var out bytes.Buffer
			code, err := c.Stream(context.Background(), api.OpShell, api.ShellArgs{Argv: []string{"sh", "-c", "echo $0", strings.Repeat("x", i+1)}}, sshclient.IO{Stdout: &out})
			if err != nil || code != 0 || strings.TrimSpace(out.String()) != strings.Repeat("x", i+1) {
				errs <- errors.New("bad result: " + out.String())
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWrongKeysAreRefused(t *testing.T) {
	socket, keys := testAgent(t)
	other := instance.Store{Root: t.TempDir()}
	inst, err := other.Create(instance.Config{Name: "o", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 1})
	if err != nil {
		t.Fatal(err)
	}
	otherKeys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	wrongClient := *keys
	wrongClient.Client = otherKeys.Client
	wrongHost := *keys
	wrongHost.HostPublic = otherKeys.HostPublic
	for name, k := range map[string]*instance.Keys{"client key not authorized": &wrongClient, "host key not the known one": &wrongHost} {
		t.Run(name, func(t *testing.T) {
			c, err := sshclient.Dial(context.Background(), socket, k)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded with a wrong key")
			}
		})
	}
}
