package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestExtractArchive: ADD of a local tar.gz makes the parents its entries
// need, takes the owner ADD --chown gives, and refuses a parent path.
func TestExtractArchive(t *testing.T) {
	write := func(names ...string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o640, Size: 2, Typeflag: tar.TypeReg, Uid: 7, Gid: 8})
			tw.Write([]byte("hi"))
		}
		tw.Close()
		zw.Close()
		p := filepath.Join(t.TempDir(), "a.tar.gz")
		os.WriteFile(p, buf.Bytes(), 0o644)
		return p
	}
	root := t.TempDir()
	ok := write("dir/sub/f.txt")
	if !isArchive(ok) {
		t.Fatal("a tar.gz is not taken for an archive")
	}
	if err := extractArchive(ok, root, "/dst", 1000, 1001); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "dst/dir/sub/f.txt"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("extracted: %v %v", fi, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("owner %d:%d, want the --chown 1000:1001", st.Uid, st.Gid)
	}
	if err := extractArchive(write("../escape.txt"), root, "/dst", -1, -1); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("an entry naming a parent: %v", err)
	}
	if isArchive(filepath.Join(root, "dst/dir/sub/f.txt")) {
		t.Error("a text file was taken for an archive")
	}
}
