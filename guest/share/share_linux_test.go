package share

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sys/unix"

	"github.com/vmbox/vmbox/guest/api"
)

// mountMem mounts an in-memory SFTP tree and returns the mount and a
// second client of the same tree, which plays the host's side.
func mountMem(t *testing.T) (*Mount, *sftp.Client) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting FUSE needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse on this machine")
	}
	handlers := sftp.InMemHandler()
	serve := func() io.ReadWriteCloser {
		a, b := net.Pipe()
		srv := sftp.NewRequestServer(b, handlers)
		go srv.Serve()
		t.Cleanup(func() { srv.Close() })
		return a
	}
	dir := filepath.Join(t.TempDir(), "share")
	m, err := New(serve(), api.Share{HostPath: "mem", GuestPath: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); m.Wait() })
	hc := serve()
	host, err := sftp.NewClientPipe(hc, hc)
	if err != nil {
		t.Fatal(err)
	}
	return m, host
}

func TestMountReadWrite(t *testing.T) {
	m, host := mountMem(t)
	dir := m.Share.GuestPath
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("from the VM"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := host.Open("/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "from the VM" {
		t.Fatalf("host reads %q", b)
	}
	if err := os.MkdirAll(filepath.Join(dir, "d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "a.txt"), filepath.Join(dir, "d/e/b.txt")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "d/e/b.txt"))
	if err != nil || string(got) != "from the VM" {
		t.Fatalf("after rename: %q, %v", got, err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "etc")); err != nil || l != "/etc" {
		t.Fatalf("readlink: %q, %v", l, err)
	}
	if err := os.Chown(filepath.Join(dir, "d/e/b.txt"), 1000, 1000); err != nil {
		t.Fatalf("chown must succeed: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Lstat("/d"); err == nil {
		t.Fatal("removed directory still on the host")
	}
}

// TestReplayRaisesInotifyEvents makes changes on the "host" side and
// checks that an inotify watcher on the mount sees each as its own kind.
func TestReplayRaisesInotifyEvents(t *testing.T) {
	m, host := mountMem(t)
	dir := m.Share.GuestPath
	writeHost := func(p, s string) {
		t.Helper()
		f, err := host.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(s))
		f.Close()
	}
	writeHost("/known.txt", "one")
	if _, err := os.ReadFile(filepath.Join(dir, "known.txt")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_DELETE|unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	events := make(chan api.ShareEvent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Replay(ctx, events)

	cases := []struct {
		name   string
		change func()
		ev     api.ShareEvent
		want   uint32
	}{
		{"create", func() { writeHost("/new.txt", "hello") }, api.ShareEvent{Path: "/new.txt", Op: api.ShareCreate}, unix.IN_CREATE},
		{"write", func() { writeHost("/known.txt", "two, longer") }, api.ShareEvent{Path: "/known.txt", Op: api.ShareWrite}, unix.IN_MODIFY},
		{"mkdir", func() { host.Mkdir("/sub") }, api.ShareEvent{Path: "/sub", Op: api.ShareCreate}, unix.IN_CREATE | unix.IN_ISDIR},
		{"chmod", func() { host.Chmod("/known.txt", 0o600) }, api.ShareEvent{Path: "/known.txt", Op: api.ShareChmod}, unix.IN_ATTRIB},
		{"remove", func() { host.Remove("/new.txt") }, api.ShareEvent{Path: "/new.txt", Op: api.ShareRemove}, unix.IN_DELETE},
	}
	for _, c := range cases {
		c.change()
		events <- c.ev
		if !waitInotify(t, fd, c.want) {
			t.Errorf("%s: no inotify event %#x", c.name, c.want)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "known.txt"))
	if err != nil || string(got) != "two, longer" {
		t.Errorf("after the host's write the VM reads %q, %v", got, err)
	}
	if _, err := host.Lstat("/new.txt"); err == nil {
		t.Error("replaying a removal must not touch the host")
	}
}

// waitInotify reads events from fd for up to 2 s until one has want.
func waitInotify(t *testing.T, fd int, want uint32) bool {
	deadline := time.Now().Add(2 * time.Second)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
			if ev.Mask&want == want {
				return true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
	return false
}

// TestMountAppend: a large write to a file opened O_APPEND lands in order
// (SFTP writes its pieces concurrently; the kernel's offsets place them).
func TestMountAppend(t *testing.T) {
	m, host := mountMem(t)
	p := filepath.Join(m.Share.GuestPath, "log")
	if err := os.WriteFile(p, []byte("head\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + i/4096%26)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hf, err := host.Open("/log")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(hf)
	hf.Close()
	if want := append([]byte("head\n"), big...); string(got) != string(want) {
		t.Errorf("appended content differs (%d bytes, want %d)", len(got), len(want))
	}
}

// TestDirectContents gives the mount a directory in the place of its
// virtiofs mount, whose files differ from the SFTP tree's, to show which
// side each operation uses: contents go through the directory, and a
// symlink or FIFO found there (the host changed the path since the
// lookup) is not followed or opened but left to SFTP.
func TestDirectContents(t *testing.T) {
	m, host := mountMem(t)
	direct := t.TempDir()
	root, err := os.OpenFile(direct, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.direct = root
	hostWrite := func(name, content string) {
		t.Helper()
		f, err := host.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(content))
		f.Close()
	}
	for _, name := range []string{"/f", "/link", "/fifo", "/new"} {
		hostWrite(name, "sftp "+name)
	}
	if err := os.WriteFile(filepath.Join(direct, "f"), []byte("DIRECT!"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("outside"), 0o644)
	if err := os.Symlink(secret, filepath.Join(direct, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(direct, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(direct, "new"), nil, 0o644)
	dir := m.Share.GuestPath

	tests := []struct{ name, want string }{
		{"f", "DIRECT!"}, // as long as the SFTP file, whose size the kernel has
		{"link", "sftp /link"},
		{"fifo", "sftp /fifo"},
	}
	for _, tc := range tests {
		done := make(chan struct{})
		var got []byte
		var err error
		go func() {
			got, err = os.ReadFile(filepath.Join(dir, tc.name))
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("reading %s hangs", tc.name)
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s reads %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	// A write opens the file on both sides (the SFTP one tells the host
	// that the guest writes it) and writes through the directory.
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(direct, "new")); string(got) != "written" {
		t.Errorf("the directory's file holds %q, want the write", got)
	}
	if got, _ := os.ReadFile(secret); string(got) != "outside" {
		t.Errorf("the symlink's target was changed: %q", got)
	}
	f, err := os.OpenFile(filepath.Join(dir, "new"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("fsync: %v", err)
	}
	f.Close()
}

// TestReplayedCreateNeverHidesTheFile: while the VM replays the host's
// creation of a file, a process that looks the file up (a command run
// right after the host wrote it) finds it: the replay's "does not exist
// yet" answer is for the replaying thread only and must not be cached.
func TestReplayedCreateNeverHidesTheFile(t *testing.T) {
	m, host := mountMem(t)
	dir := m.Share.GuestPath
	events := make(chan api.ShareEvent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Replay(ctx, events)
	for i := range 100 {
		name := "f" + strconv.Itoa(i)
		f, err := host.OpenFile("/"+name, os.O_WRONLY|os.O_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		stop := make(chan struct{})
		missing := make(chan error, 1)
		go func() {
			defer close(missing)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
					missing <- err
					return
				}
			}
		}()
		events <- api.ShareEvent{Path: "/" + name, Op: api.ShareCreate}
		time.Sleep(5 * time.Millisecond)
		close(stop)
		if err := <-missing; err != nil {
			t.Fatalf("create %d: during its replay a lookup of the host's new file failed: %v", i, err)
		}
	}
}
