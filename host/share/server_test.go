package share

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/vmbox/vmbox/guest/api"
)

// serve serves sh to an SFTP client over a pipe, for the length of the
// test.
func serve(t *testing.T, sh api.Share, w *Watcher) *sftp.Client {
	t.Helper()
	sc, cc := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Share: sh, Watcher: w}).Serve(ctx, sc) }()
	c, err := sftp.NewClientPipe(cc, cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

// statusMessage is the message of the SFTP status err carries, as the
// agent reads it: pkg/sftp's client has it only quoted in Error.
func statusMessage(err error) string {
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		return ""
	}
	s, _ := strings.CutPrefix(se.Error(), "sftp: ")
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return ""
	}
	msg, _ := strconv.Unquote(q)
	return msg
}

// errnoOf is the errno the agent would return for err.
func errnoOf(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, os.ErrNotExist): // the client keeps no message for this one
		return syscall.ENOENT
	}
	if e, ok := api.ShareErrno(statusMessage(err)); ok {
		return e
	}
	return syscall.EIO
}

// tree makes files (content, or a directory when the name ends in "/")
// under dir.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func readHost(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing string // "" for none
		flags    int
		write    string
		want     string // the file's content after; "" to skip
		errno    syscall.Errno
	}{
		{name: "create", flags: os.O_WRONLY | os.O_CREATE, write: "hello", want: "hello"},
		{name: "create excl", flags: os.O_WRONLY | os.O_CREATE | os.O_EXCL, write: "hello", want: "hello"},
		{name: "excl existing", existing: "old", flags: os.O_WRONLY | os.O_CREATE | os.O_EXCL, errno: syscall.EEXIST},
		{name: "overwrite", existing: "abcdef", flags: os.O_WRONLY, write: "xy", want: "xycdef"},
		{name: "trunc", existing: "abcdef", flags: os.O_WRONLY | os.O_TRUNC, write: "xy", want: "xy"},
		{name: "append", existing: "ab", flags: os.O_WRONLY | os.O_APPEND, write: "cd", want: "abcd"},
		{name: "read write", existing: "abc", flags: os.O_RDWR, write: "X", want: "Xbc"},
		{name: "missing", flags: os.O_RDONLY, errno: syscall.ENOENT},
		{name: "missing write", flags: os.O_WRONLY, errno: syscall.ENOENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.existing != "" {
				tree(t, dir, map[string]string{"f": tc.existing})
			}
			c := serve(t, api.Share{HostPath: dir}, nil)
			f, err := c.OpenFile("/f", tc.flags)
			if got := errnoOf(err); got != tc.errno {
				t.Fatalf("open: %v, want %v", err, tc.errno)
			}
			if err != nil {
				return
			}
			if _, err := f.Write([]byte(tc.write)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readHost(t, filepath.Join(dir, "f")); got != tc.want {
				t.Errorf("content %q, want %q", got, tc.want)
			}
			if tc.existing == "" && runtime.GOOS != "windows" {
				if fi, err := os.Stat(filepath.Join(dir, "f")); err != nil || fi.Mode().Perm()&^0o644 != 0 {
					t.Errorf("new file: %v %v, want mode 0644 (less the umask)", fi.Mode(), err)
				}
			}
		})
	}
}

// TestCreateMode checks the mode of a new file, which pkg/sftp's client
// cannot send, on the handlers.
func TestCreateMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no modes on Windows")
	}
	const write, creat = 0x02, 0x08 // SSH_FXF_WRITE, SSH_FXF_CREAT
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	h := &handlers{root: root}
	for _, tc := range []struct {
		name  string
		attrs []byte
		want  fs.FileMode // before the umask
	}{
		{"default", nil, 0o644},
		{"permissions", []byte{0, 0, 0x01, 0xa0}, 0o640},
	} {
		f, err := h.Filewrite(&sftp.Request{Method: "Put", Filepath: "/" + tc.name, Flags: write | creat, Attrs: tc.attrs})
		if err != nil {
			t.Fatal(err)
		}
		f.(io.Closer).Close()
		if fi, err := os.Stat(filepath.Join(dir, tc.name)); err != nil || fi.Mode().Perm()&^tc.want != 0 || fi.Mode().Perm()&0o600 != 0o600 {
			t.Errorf("%s: mode %v %v, want %v", tc.name, fi.Mode(), err, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 300<<10) // several reads
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := serve(t, api.Share{HostPath: dir}, nil)
	f, err := c.Open("/big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	if n, err := f.ReadAt(make([]byte, 10), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(c *sftp.Client) error
		errno syscall.Errno
		check func(t *testing.T, dir string)
	}{
		{name: "mkdir", do: func(c *sftp.Client) error { return c.Mkdir("/new") }, check: func(t *testing.T, dir string) {
			if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || !fi.IsDir() {
				t.Errorf("no directory: %v", err)
			}
		}},
		{name: "mkdir existing", do: func(c *sftp.Client) error { return c.Mkdir("/d") }, errno: syscall.EEXIST},
		{name: "mkdir missing parent", do: func(c *sftp.Client) error { return c.Mkdir("/no/new") }, errno: syscall.ENOENT},
		{name: "rmdir", do: func(c *sftp.Client) error { return c.RemoveDirectory("/d") }, check: gone("d")},
		{name: "rmdir not empty", do: func(c *sftp.Client) error { return c.RemoveDirectory("/full") }, errno: syscall.ENOTEMPTY},
		{name: "rmdir file", do: func(c *sftp.Client) error { return c.RemoveDirectory("/f") }, errno: syscall.ENOTDIR},
		{name: "remove", do: func(c *sftp.Client) error { return c.Remove("/f") }, check: gone("f")},
		{name: "remove missing", do: func(c *sftp.Client) error { return c.Remove("/no") }, errno: syscall.ENOENT},
		{name: "rename", do: func(c *sftp.Client) error { return c.Rename("/f", "/d/f") }, check: content("d/f", "data")},
		{name: "rename over", do: func(c *sftp.Client) error { return c.Rename("/f", "/g") }, check: content("g", "data")},
		{name: "posix rename over", do: func(c *sftp.Client) error { return c.PosixRename("/f", "/g") }, check: content("g", "data")},
		{name: "rename dir over empty dir", do: func(c *sftp.Client) error { return c.Rename("/full", "/d") }, check: content("d/x", "x")},
		{name: "rename dir over full dir", do: func(c *sftp.Client) error { return c.Rename("/d", "/full") }, errno: syscall.ENOTEMPTY},
		{name: "rename file over dir", do: func(c *sftp.Client) error { return c.Rename("/f", "/d") }, errno: syscall.EISDIR},
		{name: "rename missing", do: func(c *sftp.Client) error { return c.Rename("/no", "/g") }, errno: syscall.ENOENT},
		{name: "link", do: func(c *sftp.Client) error { return c.Link("/f", "/h") }, check: func(t *testing.T, dir string) {
			a, _ := os.Stat(filepath.Join(dir, "f"))
			b, err := os.Stat(filepath.Join(dir, "h"))
			if err != nil || !os.SameFile(a, b) {
				t.Errorf("no hard link: %v", err)
			}
		}},
		{name: "link existing", do: func(c *sftp.Client) error { return c.Link("/f", "/g") }, errno: syscall.EEXIST},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tree(t, dir, map[string]string{"f": "data", "g": "other", "d/": "", "full/x": "x"})
			c := serve(t, api.Share{HostPath: dir}, nil)
			err := tc.do(c)
			if got := errnoOf(err); got != tc.errno {
				t.Fatalf("%v (%v), want %v", err, got, tc.errno)
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}
}

// TestRemoveType checks that Remove removes no directory and Rmdir no
// file, on the handlers: pkg/sftp's client Remove tries Rmdir after a
// failed Remove.
func TestRemoveType(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "", "d/": ""})
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	h := &handlers{root: root}
	for _, tc := range []struct {
		method, path string
		errno        syscall.Errno
	}{
		{"Remove", "/d", syscall.EISDIR},
		{"Rmdir", "/f", syscall.ENOTDIR},
		{"Remove", "/f", 0},
		{"Rmdir", "/d", 0},
	} {
		err := h.Filecmd(sftp.NewRequest(tc.method, tc.path))
		if tc.errno == 0 && err != nil || tc.errno != 0 && !errors.Is(err, tc.errno) {
			t.Errorf("%s %s: %v, want %v", tc.method, tc.path, err, tc.errno)
		}
	}
}

func gone(name string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there: %v", name, err)
		}
	}
}

func content(name, want string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if got := readHost(t, filepath.Join(dir, filepath.FromSlash(name))); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
}

func TestSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need a privilege on Windows")
	}
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data"})
	c := serve(t, api.Share{HostPath: dir}, nil)
	for i, target := range []string{"f", "/etc/passwd", "../../x", "no/such"} {
		link := "/l" + strconv.Itoa(i)
		if err := c.Symlink(target, link); err != nil {
			t.Fatalf("symlink %s: %v", target, err)
		}
		if got, err := os.Readlink(filepath.Join(dir, link)); err != nil || got != target {
			t.Errorf("host sees %s -> %q (%v), want %q", link, got, err, target)
		}
		if got, err := c.ReadLink(link); err != nil || got != target {
			t.Errorf("readlink %s: %q (%v), want %q", link, got, err, target)
		}
		if fi, err := c.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("lstat %s: %v %v", link, fi, err)
		}
	}
	// Within the share, Stat follows.
	if fi, err := c.Stat("/l0"); err != nil || fi.Size() != 4 {
		t.Errorf("stat through a symlink: %v %v", fi, err)
	}
	if err := c.Symlink("f", "/l0"); errnoOf(err) != syscall.EEXIST {
		t.Errorf("symlink over a file: %v", err)
	}
}

func TestSetstat(t *testing.T) {
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		do    func(c *sftp.Client) error
		check func(t *testing.T, fi fs.FileInfo)
		errno syscall.Errno
	}{
		{name: "chmod", do: func(c *sftp.Client) error { return c.Chmod("/f", 0o600) }, check: func(t *testing.T, fi fs.FileInfo) {
			if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi.Mode())
			}
		}},
		{name: "truncate", do: func(c *sftp.Client) error { return c.Truncate("/f", 2) }, check: size(2)},
		{name: "extend", do: func(c *sftp.Client) error { return c.Truncate("/f", 100) }, check: size(100)},
		{name: "handle truncate", do: func(c *sftp.Client) error {
			f, err := c.OpenFile("/f", os.O_RDWR)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(1)
		}, check: size(1)},
		{name: "chtimes", do: func(c *sftp.Client) error { return c.Chtimes("/f", mtime, mtime) }, check: func(t *testing.T, fi fs.FileInfo) {
			if !fi.ModTime().Equal(mtime) {
				t.Errorf("mtime %v, want %v", fi.ModTime(), mtime)
			}
		}},
		{name: "chown", do: func(c *sftp.Client) error { return c.Chown("/f", 0, 0) }, check: size(4)},
		{name: "missing", do: func(c *sftp.Client) error { return c.Chmod("/no", 0o600) }, errno: syscall.ENOENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tree(t, dir, map[string]string{"f": "data"})
			c := serve(t, api.Share{HostPath: dir}, nil)
			err := tc.do(c)
			if got := errnoOf(err); got != tc.errno {
				t.Fatalf("%v, want %v", err, tc.errno)
			}
			if tc.check != nil {
				fi, err := os.Stat(filepath.Join(dir, "f"))
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, fi)
			}
		})
	}
}

func size(n int64) func(t *testing.T, fi fs.FileInfo) {
	return func(t *testing.T, fi fs.FileInfo) {
		if fi.Size() != n {
			t.Errorf("size %d, want %d", fi.Size(), n)
		}
	}
}

// TestEscape checks that nothing leads out of the share: not ".." and
// not a symlink, absolute or relative, to a folder beside it.
func TestEscape(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need a privilege on Windows")
	}
	top := t.TempDir()
	dir, outside := filepath.Join(top, "share"), filepath.Join(top, "outside")
	tree(t, top, map[string]string{"share/f": "data", "outside/secret": "secret", "x": "beside"})
	if err := os.Symlink(outside, filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	c := serve(t, api.Share{HostPath: dir}, nil)
	for _, link := range []string{"/abs", "/rel"} {
		for _, tc := range []struct {
			name string
			do   func(p string) error
		}{
			{"stat", func(p string) error { _, err := c.Stat(p + "/secret"); return err }},
			{"lstat", func(p string) error { _, err := c.Lstat(p + "/secret"); return err }},
			{"stat dir", func(p string) error { _, err := c.Stat(p); return err }},
			{"readdir", func(p string) error { _, err := c.ReadDir(p); return err }},
			{"open", func(p string) error {
				f, err := c.Open(p + "/secret")
				if err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Errorf("read %q outside the share", b)
				}
				return err
			}},
			{"create", func(p string) error { _, err := c.Create(p + "/new"); return err }},
			{"mkdir", func(p string) error { return c.Mkdir(p + "/new") }},
			{"remove", func(p string) error { return c.Remove(p + "/secret") }},
			{"rename in", func(p string) error { return c.Rename("/f", p+"/f") }},
			{"rename out", func(p string) error { return c.Rename(p+"/secret", "/stolen") }},
			{"link", func(p string) error { return c.Link(p+"/secret", "/stolen") }},
			{"symlink", func(p string) error { return c.Symlink("x", p+"/new") }},
			{"chmod", func(p string) error { return c.Chmod(p+"/secret", 0o777) }},
			{"truncate", func(p string) error { return c.Truncate(p+"/secret", 0) }},
		} {
			err := tc.do(link)
			if e := errnoOf(err); e != syscall.EACCES {
				t.Errorf("%s %s: %v (%v), want EACCES", tc.name, link, err, e)
			}
		}
	}
	if got := readHost(t, filepath.Join(outside, "secret")); got != "secret" {
		t.Errorf("outside file holds %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(outside, "secret")); fi.Mode().Perm() != 0o644 {
		t.Errorf("outside file mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside holds %d entries", len(ents))
	}
	if _, err := os.Lstat(filepath.Join(dir, "stolen")); err == nil {
		t.Error("an outside file came in")
	}
	// The links themselves are the client's to resolve.
	if got, err := c.ReadLink("/abs"); err != nil || got != outside {
		t.Errorf("readlink: %q %v", got, err)
	}
	// ".." stays at the top.
	if _, err := c.Stat("/../x"); errnoOf(err) != syscall.ENOENT {
		t.Errorf("stat /../x: %v, want ENOENT", err)
	}
	f, err := c.Create("/../../x")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("inside"))
	f.Close()
	if got := readHost(t, filepath.Join(dir, "x")); got != "inside" {
		t.Errorf("share's x holds %q", got)
	}
	if got := readHost(t, filepath.Join(top, "x")); got != "beside" {
		t.Errorf("the file beside the share holds %q", got)
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data", "d/": ""})
	c := serve(t, api.Share{HostPath: dir, ReadOnly: true}, nil)
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, err := c.Create("/new"); return err }},
		{"open for writing", func() error { _, err := c.OpenFile("/f", os.O_WRONLY); return err }},
		{"open for reading and writing", func() error { _, err := c.OpenFile("/f", os.O_RDWR); return err }},
		{"append", func() error { _, err := c.OpenFile("/f", os.O_WRONLY|os.O_APPEND); return err }},
		{"mkdir", func() error { return c.Mkdir("/new") }},
		{"remove", func() error { return c.Remove("/f") }},
		{"rmdir", func() error { return c.RemoveDirectory("/d") }},
		{"rename", func() error { return c.Rename("/f", "/g") }},
		{"posix rename", func() error { return c.PosixRename("/f", "/g") }},
		{"chmod", func() error { return c.Chmod("/f", 0o600) }},
		{"chown", func() error { return c.Chown("/f", 0, 0) }},
		{"chtimes", func() error { return c.Chtimes("/f", time.Now(), time.Now()) }},
		{"truncate", func() error { return c.Truncate("/f", 0) }},
		{"symlink", func() error { return c.Symlink("f", "/l") }},
		{"link", func() error { return c.Link("/f", "/h") }},
	} {
		err := tc.do()
		if msg := statusMessage(err); !strings.HasPrefix(msg, "EROFS: ") {
			t.Errorf("%s: %v, want EROFS", tc.name, err)
		}
	}
	if got := readHost(t, filepath.Join(dir, "f")); got != "data" {
		t.Errorf("f holds %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the share holds %d entries", len(ents))
	}
	// Reads work.
	f, err := c.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || string(b) != "data" {
		t.Errorf("read %q %v", b, err)
	}
	if ents, err := c.ReadDir("/"); err != nil || len(ents) != 2 {
		t.Errorf("readdir: %d entries, %v", len(ents), err)
	}
}

func TestErrorMessages(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"f": "data", "full/x": ""})
	c := serve(t, api.Share{HostPath: dir}, nil)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c.Mkdir("/f"), "EEXIST: "},
		{c.RemoveDirectory("/full"), "ENOTEMPTY: "},
		{c.Link("/f", "/f"), "EEXIST: "},
	} {
		if msg := statusMessage(tc.err); !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%v: message %q, want %q...", tc.err, msg, tc.want)
		}
	}
	// The client keeps no message for ENOENT, only its code.
	if _, err := c.Stat("/no"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"d/": ""}
	for i := range 250 { // more than a batch of sftp.MaxFilelist
		files["f"+strconv.Itoa(i)] = "x"
	}
	tree(t, dir, files)
	if runtime.GOOS != "windows" {
		if err := os.Symlink("/etc", filepath.Join(dir, "l")); err != nil {
			t.Fatal(err)
		}
	}
	c := serve(t, api.Share{HostPath: dir}, nil)
	ents, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fs.FileMode{}
	for _, e := range ents {
		got[e.Name()] = e.Mode()
	}
	want := len(files)
	if runtime.GOOS != "windows" {
		want++
		if got["l"]&fs.ModeSymlink == 0 {
			t.Errorf("l: mode %v, want a symlink", got["l"])
		}
	}
	if len(got) != want || !got["d"].IsDir() || !got["f7"].IsRegular() {
		t.Errorf("%d entries (d %v, f7 %v), want %d", len(got), got["d"], got["f7"], want)
	}
	if _, err := c.ReadDir("/f7"); errnoOf(err) != syscall.ENOTDIR {
		t.Errorf("readdir of a file: %v", err)
	}
}

func TestStatVFS(t *testing.T) {
	dir := t.TempDir()
	c := serve(t, api.Share{HostPath: dir, ReadOnly: true}, nil)
	st, err := c.StatVFS("/")
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		if errnoOf(err) != syscall.ENOSYS {
			t.Errorf("statvfs: %v, want ENOSYS", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Bsize == 0 || st.Blocks == 0 || st.Flag&stRdonly == 0 {
		t.Errorf("statvfs: %+v", st)
	}
}

func TestFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		msg  string
		code error
	}{
		{&fs.PathError{Op: "open", Path: "a", Err: syscall.ENOENT}, "ENOENT: open a: no such file or directory", sftp.ErrSSHFxNoSuchFile},
		{&fs.PathError{Op: "rmdir", Path: "a", Err: syscall.ENOTEMPTY}, "ENOTEMPTY: rmdir a: " + syscall.ENOTEMPTY.Error(), sftp.ErrSSHFxFailure},
		{&fs.PathError{Op: "open", Path: "a", Err: syscall.EACCES}, "EACCES: open a: " + syscall.EACCES.Error(), sftp.ErrSSHFxFailure},
		{api.ShareEscapeError("stat", "/l/x"), "EACCES: stat /l/x: outside the share: " + syscall.EACCES.Error(), sftp.ErrSSHFxFailure},
		{syscall.ENOSYS, "ENOSYS: " + syscall.ENOSYS.Error(), sftp.ErrSSHFxOpUnsupported},
		{errors.New("odd"), "EIO: odd", sftp.ErrSSHFxFailure},
	} {
		err := fail(tc.err)
		if err.Error() != tc.msg || err.Error() != api.ShareErrorMessage(tc.err) {
			t.Errorf("message %q, want %q", err.Error(), tc.msg)
		}
		if !errors.Is(err, tc.code) || !errors.Is(err, tc.err) {
			t.Errorf("%v: not %v", err, tc.code)
		}
		if fail(err) != err {
			t.Errorf("%v: failed twice", err)
		}
	}
	if fail(nil) != nil {
		t.Error("fail(nil) is not nil")
	}
}
