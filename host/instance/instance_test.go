package instance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := Config{Name: "default", Arch: "amd64", CPUs: 2, MemoryMiB: 2048, DiskGiB: 100}
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"ok", func(c *Config) {}, ""},
		{"upper case name", func(c *Config) { c.Name = "Dev" }, "invalid instance name"},
		{"path in name", func(c *Config) { c.Name = "../x" }, "invalid instance name"},
		{"empty name", func(c *Config) { c.Name = "" }, "invalid instance name"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("a", 33) }, "invalid instance name"},
		{"zero cpus", func(c *Config) { c.CPUs = 0 }, "--cpus"},
		{"tiny memory", func(c *Config) { c.MemoryMiB = 100 }, "--memory"},
		{"no disk", func(c *Config) { c.DiskGiB = 0 }, "--disk"},
		{"bad arch", func(c *Config) { c.Arch = "riscv64" }, "architecture"},
		{"mount type sftp", func(c *Config) { c.MountType = MountTypeSFTP }, ""},
		{"mount type auto", func(c *Config) { c.MountType = MountTypeAuto }, ""},
		{"bad mount type", func(c *Config) { c.MountType = "9p" }, `invalid --mount-type "9p": use auto or sftp`},
		{"idle pause", func(c *Config) { c.IdlePause = "90s" }, ""},
		{"idle pause never", func(c *Config) { c.IdlePause = "0" }, ""},
		{"idle pause too short", func(c *Config) { c.IdlePause = "1s" }, `invalid --idle-pause "1s"`},
		{"idle pause negative", func(c *Config) { c.IdlePause = "-5m" }, `invalid --idle-pause "-5m"`},
		{"idle pause not a duration", func(c *Config) { c.IdlePause = "5" }, `invalid --idle-pause "5"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestIdlePauseAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultIdlePause, "0": 0, "0s": 0, "90s": 90 * time.Second, "1h": time.Hour} {
		if got := (Config{IdlePause: in}).IdlePauseAfter(); got != want {
			t.Errorf("IdlePauseAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCreateGetListDelete(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if _, err := s.Get("default"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Get of missing instance = %v", err)
	}
	c := Config{Name: "default", Arch: "amd64", CPUs: 2, MemoryMiB: 2048, DiskGiB: 100}
	inst, err := s.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(c); err == nil {
		t.Fatal("second Create succeeded")
	}
	st, err := os.Stat(inst.Path(DataDiskFile))
	if err != nil || st.Size() != 100<<30 {
		t.Fatalf("data disk: %v size %d", err, st.Size())
	}
	for _, f := range []string{ClientKeyFile, HostKeyFile} {
		if st, err := os.Stat(inst.Path(f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, st.Mode())
		}
	}
	keys, err := inst.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if keys.Host.PublicKey().Type() != "ssh-ed25519" || len(keys.AuthorizedKey) == 0 {
		t.Fatalf("keys: %+v", keys)
	}
	got, err := s.Get("default")
	if err != nil || got.Config.CPUs != 2 || got.Config.Created.IsZero() {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	os.MkdirAll(filepath.Join(s.Root, "not-an-instance"), 0o700)
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Config.Name != "default" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := inst.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inst.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance dir still there: %v", err)
	}
}

func TestEnsureDiskGrowsButNeverShrinks(t *testing.T) {
	s := Store{Root: t.TempDir()}
	inst, err := s.Create(Config{Name: "d", Arch: "amd64", CPUs: 1, MemoryMiB: 512, DiskGiB: 2})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(inst.Path(DataDiskFile), os.O_WRONLY, 0)
	f.WriteAt([]byte("data"), 1<<20)
	f.Close()
	for _, gib := range []int{3, 1} {
		inst.Config.DiskGiB = gib
		if err := inst.EnsureDisk(); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(inst.Path(DataDiskFile))
	b := make([]byte, 4)
	f, _ = os.Open(inst.Path(DataDiskFile))
	f.ReadAt(b, 1<<20)
	f.Close()
	if st.Size() != 3<<30 || string(b) != "data" {
		t.Fatalf("disk size %d content %q", st.Size(), b)
	}
}

func TestLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	if Held(p) {
		t.Fatal("fresh lock held")
	}
	l, err := TryLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(p) {
		t.Fatal("held lock not seen")
	}
	if _, err := TryLock(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := WaitLock(ctx, p); err == nil {
		t.Fatal("WaitLock got a held lock")
	}
	l.Release()
	if Held(p) {
		t.Fatal("released lock still held")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
