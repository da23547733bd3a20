package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmbox/vmbox/host/instance"
)

func ptr[T any](v T) *T { return &v }

func testManager(t *testing.T) *Manager {
	t.Helper()
	return &Manager{Store: instance.Store{Root: t.TempDir()}}
}

func TestCreateAndReconfigure(t *testing.T) {
	m := testManager(t)
	inst, err := m.Create("dev", Settings{CPUs: ptr(1), MemoryMiB: ptr(512), Driver: ptr("qemu")})
	if err != nil {
		t.Fatal(err)
	}
	if c := inst.Config; c.CPUs != 1 || c.MemoryMiB != 512 || c.DiskGiB != instance.DefaultDiskGiB || c.Arch != runtime.GOARCH || c.Driver != "qemu" {
		t.Fatalf("created config = %+v", c)
	}
	if _, err := m.Create("dev", Settings{CPUs: ptr(4)}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: err = %v, want ErrExists", err)
	}
	if got, _ := m.Store.Get("dev"); got.Config.CPUs != 1 {
		t.Fatalf("refused create changed the instance: cpus = %d", got.Config.CPUs)
	}

	cases := []struct {
		name    string
		s       Settings
		invalid string // substring of the ErrInvalid message; "" = accepted
	}{
		{"grow disk", Settings{DiskGiB: ptr(instance.DefaultDiskGiB + 1)}, ""},
		{"shrink disk", Settings{DiskGiB: ptr(1)}, "never shrunk"},
		{"other arch", Settings{Arch: ptr(map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH])}, "delete it to change"},
		{"zero cpus", Settings{CPUs: ptr(0)}, "cpu"},
		{"more memory", Settings{MemoryMiB: ptr(1024)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inst, _ := m.Store.Get("dev")
			before := inst.Config
			err := m.Reconfigure(inst, tc.s)
			if tc.invalid == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(strings.ToLower(err.Error()), tc.invalid) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.invalid)
			}
			if !reflect.DeepEqual(inst.Config, before) {
				t.Fatalf("refused change left %+v, want %+v", inst.Config, before)
			}
			if stored, _ := m.Store.Get("dev"); !reflect.DeepEqual(stored.Config, before) {
				t.Fatalf("refused change was stored: %+v", stored.Config)
			}
		})
	}
	got, _ := m.Store.Get("dev")
	if got.Config.DiskGiB != instance.DefaultDiskGiB+1 || got.Config.MemoryMiB != 1024 {
		t.Fatalf("accepted changes not stored: %+v", got.Config)
	}
}

func TestEnsure(t *testing.T) {
	m := testManager(t)
	if _, err := m.Create("bad name!", Settings{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: err = %v, want ErrInvalid", err)
	}
	if _, _, err := m.Ensure("Bad Name", Settings{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ensure with a bad name: err = %v, want ErrInvalid", err)
	}
	if _, err := m.Create("x", Settings{Driver: ptr("bhyve")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown driver: err = %v, want ErrInvalid", err)
	}
	inst, created, err := m.Ensure("x", Settings{Driver: ptr("qemu")})
	if err != nil || !created {
		t.Fatalf("first ensure: created=%v err=%v", created, err)
	}
	inst, created, err = m.Ensure("x", Settings{CPUs: ptr(3)})
	if err != nil || created || inst.Config.CPUs != 3 {
		t.Fatalf("second ensure: created=%v err=%v cpus=%d", created, err, inst.Config.CPUs)
	}
}

func TestStatusAndStopOfStoppedInstance(t *testing.T) {
	m := testManager(t)
	inst, err := m.Create("s", Settings{Driver: ptr("qemu")})
	if err != nil {
		t.Fatal(err)
	}
	if s := StatusOf(inst); s.State != StateStopped || s.UptimeSeconds != 0 || s.DockerHost != "" {
		t.Fatalf("status = %+v", s)
	}
	lock, err := instance.WaitLock(context.Background(), inst.Path(instance.RunLockFile))
	if err != nil {
		t.Fatal(err)
	}
	if s := StatusOf(inst); s.State != StateStarting || s.DockerHost != "" {
		t.Fatalf("with the run lock held and no boot marker: %+v", s)
	}
	boot := instance.BootInfo{Pid: os.Getpid(), Driver: "qemu", Accelerator: "tcg", EmulatedBecause: "KVM is not usable: there is no /dev/kvm",
		Started: time.Now(), Ready: time.Now().Add(-time.Minute)}
	if err := inst.WriteBootInfo(boot); err != nil {
		t.Fatal(err)
	}
	if s := StatusOf(inst); s.State != StateRunning || s.Accelerator != "tcg" || s.EmulatedBecause != boot.EmulatedBecause ||
		s.UptimeSeconds < 59 || s.DockerHost != inst.DockerHost() {
		t.Fatalf("running: %+v", s)
	}
	b, err := json.Marshal(StatusOf(inst))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(map[string]string{"dockerHost": inst.DockerHost()}); !strings.Contains(string(b), strings.Trim(string(want), "{}")) {
		t.Fatalf("running instance's JSON %s lacks %s", b, want)
	}
	silent := time.Now().Add(-time.Minute)
	boot.AgentSilentSince = &silent
	if err := inst.WriteBootInfo(boot); err != nil {
		t.Fatal(err)
	}
	// The socket still listens; its connections close at once.
	if s := StatusOf(inst); s.State != StateUnresponsive || s.DockerHost != inst.DockerHost() || s.HypervisorState != "" ||
		!strings.Contains(s.Hint, "has not answered") {
		t.Fatalf("unresponsive: %+v", s)
	}
	boot.HypervisorState = "io-error"
	if err := inst.WriteBootInfo(boot); err != nil {
		t.Fatal(err)
	}
	if s := StatusOf(inst); s.State != StateUnresponsive || s.HypervisorState != "io-error" || !strings.Contains(s.Hint, "is the host's disk full?") {
		t.Fatalf("unresponsive with the guest halted on a disk error: %+v", s)
	}
	lock.Release()
	b, err = json.Marshal(StatusOf(inst))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "dockerHost") {
		t.Fatalf("a stopped instance's JSON has a dockerHost: %s", b)
	}
	stopped, err := m.Stop(context.Background(), inst, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || stopped {
		t.Fatalf("stop of a stopped instance: stopped=%v err=%v", stopped, err)
	}
}

// TestStartReportsHostProcessError runs a stand-in host process that fails
// the way the real one does (a last log line) and checks Start says why.
func TestStartReportsHostProcessError(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in host process is a shell script")
	}
	image := t.TempDir()
	for _, f := range []string{"kernel", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(image, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("VMBOX_IMAGE_DIR", image)
	script := filepath.Join(t.TempDir(), "vmbox")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'vmbox: the hypervisor refused: out of cheese' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := testManager(t)
	m.Executable = script
	inst, err := m.Create("f", Settings{Driver: ptr("qemu")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDriver("qemu", inst.Config.Arch); err != nil {
		t.Skipf("qemu driver unavailable here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = m.Start(ctx, inst, nil)
	if err == nil || !strings.Contains(err.Error(), "out of cheese") {
		t.Fatalf("err = %v, want the host process's last log line", err)
	}
}
