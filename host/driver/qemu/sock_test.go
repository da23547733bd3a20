package qemu

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestSocketAliasLongPath listens on a socket whose absolute path exceeds
// sockaddr_un (by listening relative to it, as QEMU does) and connects
// through socketAlias.
func TestSocketAliasLongPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	dir := filepath.Join(t.TempDir(), strings.Repeat("long-vmbox-home/", 10), "instances", "default")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, QMPSocketName)
	if len(path) <= maxSocketPath(runtime.GOOS) {
		t.Fatalf("path of %d bytes is not long enough", len(path))
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("dialling the long path directly worked; the test proves nothing")
	}
	t.Chdir(dir)
	l, err := net.Listen("unix", QMPSocketName)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()

	alias, cleanup, err := socketAlias(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(alias) > maxSocketPath(runtime.GOOS) {
		t.Fatalf("alias %s is %d bytes", alias, len(alias))
	}
	c, err := net.Dial("unix", alias)
	if err != nil {
		t.Fatalf("dial %s: %v", alias, err)
	}
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Close()
	cleanup()
	if _, err := os.Lstat(alias); err == nil {
		t.Fatalf("alias %s left behind", alias)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(alias))); err == nil {
		t.Fatal("alias directory left behind")
	}
}

func TestSocketAliasShortPath(t *testing.T) {
	p := "/tmp/x/" + QMPSocketName
	alias, cleanup, err := socketAlias(p)
	defer cleanup()
	if err != nil || alias != p {
		t.Fatalf("socketAlias(%s) = %s, %v; want the path itself", p, alias, err)
	}
}
