package container

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChownIDs(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1500::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:app\n"), 0o644)
	for _, c := range []struct {
		spec     string
		uid, gid int
		bad      bool
	}{
		{spec: "app", uid: 1000, gid: 1000},
		{spec: "app:staff", uid: 1000, gid: 50},
		{spec: "1000:50", uid: 1000, gid: 50},
		{spec: "42", uid: 42, gid: 42},
		{spec: "app:7", uid: 1000, gid: 7},
		{spec: "nobody", bad: true},
		{spec: "app:wheel", bad: true},
	} {
		uid, gid, err := ChownIDs(root, c.spec)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error", c.spec)
			}
			continue
		}
		if err != nil || uid != c.uid || gid != c.gid {
			t.Errorf("%q = %d:%d, %v; want %d:%d", c.spec, uid, gid, err, c.uid, c.gid)
		}
	}
	// A passwd that is a symlink out of the tree is not read.
	linked := t.TempDir()
	os.MkdirAll(filepath.Join(linked, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(linked, "etc/passwd"))
	if _, _, err := ChownIDs(linked, "root"); err == nil {
		// /etc/passwd resolves inside linked, where there is none: root
		// is not found by name.
		t.Error("a passwd symlink out of the tree was followed")
	}
}
