package share

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/vmbox/vmbox/guest/api"
)

// watched serves a watched share of dir; the channel gets the watcher's
// events.
func watched(t *testing.T, dir string) (*sftp.Client, *Watcher, <-chan api.ShareEvent) {
	t.Helper()
	return watchedShare(t, api.Share{HostPath: dir, GuestPath: "/g"})
}

func watchedShare(t *testing.T, sh api.Share) (*sftp.Client, *Watcher, <-chan api.ShareEvent) {
	t.Helper()
	w, err := NewWatcher(sh, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan api.ShareEvent, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(ctx context.Context, evs []api.ShareEvent) {
			for _, ev := range evs {
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return serve(t, sh, w), w, events
}

// waitFor returns the events that come until all of want have, failing
// the test if that takes more than a few seconds.
func waitFor(t *testing.T, events <-chan api.ShareEvent, want ...api.ShareEvent) []api.ShareEvent {
	t.Helper()
	var seen []api.ShareEvent
	timeout := time.After(5 * time.Second)
	for {
		missing := slices.DeleteFunc(slices.Clone(want), func(ev api.ShareEvent) bool { return slices.Contains(seen, ev) })
		if len(missing) == 0 {
			return seen
		}
		select {
		case ev := <-events:
			seen = append(seen, ev)
		case <-timeout:
			t.Fatalf("no %v; saw %v", missing, seen)
		}
	}
}

func ev(p, op string) api.ShareEvent { return api.ShareEvent{GuestPath: "/g", Path: p, Op: op} }

func TestWatcherHostChanges(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data", "sub/": "", "sub/deep/": ""})
	c, _, events := watched(t, dir)
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lstat("/sub"); err != nil { // a lookup watches too
		t.Fatal(err)
	}
	host := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	for _, tc := range []struct {
		name string
		do   func() error
		want []api.ShareEvent
	}{
		{"create", func() error { return os.WriteFile(host("new"), []byte("x"), 0o644) }, []api.ShareEvent{ev("/new", api.ShareCreate)}},
		{"write", func() error { return os.WriteFile(host("f"), []byte("more data"), 0o644) }, []api.ShareEvent{ev("/f", api.ShareWrite)}},
		{"chmod", func() error { return os.Chmod(host("f"), 0o600) }, []api.ShareEvent{ev("/f", api.ShareChmod)}},
		{"remove", func() error { return os.Remove(host("f")) }, []api.ShareEvent{ev("/f", api.ShareRemove)}},
		{"rename", func() error { return os.Rename(host("new"), host("sub/moved")) }, []api.ShareEvent{ev("/new", api.ShareRemove), ev("/sub/moved", api.ShareCreate)}},
		{"mkdir", func() error { return os.Mkdir(host("sub/d"), 0o755) }, []api.ShareEvent{ev("/sub/d", api.ShareCreate)}},
	} {
		if tc.name == "chmod" && runtime.GOOS == "windows" {
			continue
		}
		if err := tc.do(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, events, tc.want...)
	}
	// Nothing reports a directory the guest has not looked at.
	if err := os.WriteFile(host("sub/deep/x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host("marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range waitFor(t, events, ev("/marker", api.ShareCreate)) {
		if e.Path == "/sub/deep/x" {
			t.Errorf("%v from a directory not looked at", e)
		}
	}
}

// TestWatcherNoEcho checks that the guest's own changes do not come back,
// but a host write right after a guest write does.
func TestWatcherNoEcho(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data", "d/": ""})
	c, _, events := watched(t, dir)
	for _, d := range []string{"/", "/d"} {
		if _, err := c.ReadDir(d); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, flags int, data string) error {
		f, err := c.OpenFile(p, flags)
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte(data)); err != nil {
			return err
		}
		return f.Close()
	}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return write("/a", os.O_RDWR|os.O_CREATE|os.O_TRUNC, "new") }},
		{"write", func() error { return write("/f", os.O_WRONLY, "DA") }},
		{"append", func() error { return write("/f", os.O_WRONLY|os.O_APPEND, "more") }},
		{"mkdir", func() error { return c.Mkdir("/m") }},
		{"chmod", func() error { return c.Chmod("/f", 0o600) }},
		{"chtimes", func() error { return c.Chtimes("/f", time.Now(), time.Now().Add(-time.Hour)) }},
		{"truncate", func() error { return c.Truncate("/f", 3) }},
		{"symlink", func() error {
			if runtime.GOOS == "windows" {
				return nil
			}
			return c.Symlink("f", "/s")
		}},
		{"link", func() error { return c.Link("/f", "/h") }},
		{"rename", func() error { return c.Rename("/a", "/d/b") }},
		{"remove", func() error { return c.Remove("/h") }},
		{"rmdir", func() error { return c.RemoveDirectory("/m") }},
		{"rename over", func() error { return c.PosixRename("/f", "/d/b") }},
	} {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	quiet(t, dir, events, "marker1")

	// A file the guest wrote and left is told by what the write left.
	if err := write("/d/b", os.O_WRONLY|os.O_TRUNC, "guest"); err != nil {
		t.Fatal(err)
	}
	quiet(t, dir, events, "marker2")
	// A host edit right after the guest's write gets through.
	if err := write("/d/b", os.O_WRONLY, "GUEST"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "b"), []byte("host edit"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, ev("/d/b", api.ShareWrite))
}

// TestWatcherNoEchoVirtiofs: with a virtiofs device, the guest opens a
// file for writing over SFTP but writes its contents through virtiofs,
// which the server does not see: until the guest closes the SFTP file,
// and after as long as the file is as the guest left it, its changes are
// the guest's own.
func TestWatcherNoEchoVirtiofs(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data"})
	c, _, events := watchedShare(t, api.Share{HostPath: dir, GuestPath: "/g", Tag: "vmbox0"})
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR | os.O_CREATE | os.O_TRUNC} {
		f, err := c.OpenFile("/f", flags)
		if err != nil {
			t.Fatal(err)
		}
		// virtiofsd's writes, in pieces, with pauses longer than a batch.
		for i := range 3 {
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte(strings.Repeat("virtiofs ", i+1)), 0o644); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	quiet(t, dir, events, "marker")
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("host edit"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, ev("/f", api.ShareWrite))
}

// quiet makes a file on the host and fails the test for any other event
// that comes before its.
func quiet(t *testing.T, dir string, events <-chan api.ShareEvent, marker string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range waitFor(t, events, ev("/"+marker, api.ShareCreate)) {
		if e.Path != "/"+marker {
			t.Errorf("echo: %v", e)
		}
	}
}

func TestWatcherBound(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"a/": "", "b/": "", "c/": ""})
	c, w, events := watched(t, dir)
	w.maxDirs = 2
	for _, d := range []string{"/a", "/b", "/a", "/c"} { // /b is the least recently used
		if _, err := c.ReadDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(w.fsw.WatchList()); got != 2 {
		t.Errorf("%d watches, want 2", got)
	}
	for _, p := range []string{"b/x", "a/x"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range waitFor(t, events, ev("/a/x", api.ShareCreate)) {
		if e.Path == "/b/x" {
			t.Errorf("%v from a directory no longer watched", e)
		}
	}
}

func TestWatcherSymlinkedDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need a privilege on Windows")
	}
	top := t.TempDir()
	dir := filepath.Join(top, "share")
	tree(t, top, map[string]string{"share/in/": "", "outside/": ""})
	for target, link := range map[string]string{"in": "share/l", filepath.Join(top, "outside"): "share/out"} {
		if err := os.Symlink(target, filepath.Join(top, link)); err != nil {
			t.Fatal(err)
		}
	}
	c, w, _ := watched(t, dir)
	if _, err := c.Stat("/l"); err != nil { // a directory, through a symlink
		t.Fatal(err)
	}
	c.Stat("/out") // refused
	if got := w.fsw.WatchList(); len(got) != 0 {
		t.Errorf("watches %v", got)
	}
}

func TestBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []api.ShareEvent
		want []api.ShareEvent
	}{
		{"duplicates", []api.ShareEvent{ev("/a", "write"), ev("/b", "write"), ev("/a", "write")}, []api.ShareEvent{ev("/b", "write"), ev("/a", "write")}},
		{"recreated", []api.ShareEvent{ev("/a", "create"), ev("/a", "remove"), ev("/a", "create")}, []api.ShareEvent{ev("/a", "remove"), ev("/a", "create")}},
		{"removed", []api.ShareEvent{ev("/a", "create"), ev("/a", "write"), ev("/a", "remove")}, []api.ShareEvent{ev("/a", "create"), ev("/a", "write"), ev("/a", "remove")}},
	} {
		var b batch
		for _, e := range tc.in {
			b.add(e)
		}
		got := slices.DeleteFunc(b.take(), func(e api.ShareEvent) bool { return e.Op == "" })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if len(b.take()) != 0 {
			t.Errorf("%s: batch not emptied", tc.name)
		}
	}
}
