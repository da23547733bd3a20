package vmimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries []tar.Header, data map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		h.Size = int64(len(data[h.Name]))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data[h.Name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTreeAddTarAndLookup(t *testing.T) {
	tr := newTree()
	err := tr.addTar(bytes.NewReader(tarOf(t, []tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./lib/x86_64-linux-gnu/libfoo.so.1.2", Typeflag: tar.TypeReg},
		{Name: "./lib/x86_64-linux-gnu/libfoo.so.1", Typeflag: tar.TypeSymlink, Linkname: "libfoo.so.1.2"},
		{Name: "./lib64/ld.so", Typeflag: tar.TypeSymlink, Linkname: "/lib/x86_64-linux-gnu/libfoo.so.1"},
		{Name: "./sbin/hard", Typeflag: tar.TypeLink, Linkname: "./lib/x86_64-linux-gnu/libfoo.so.1.2"},
		{Name: "./escape", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc/hostname"},
		{Name: "./usr/share/doc/foo/changelog", Typeflag: tar.TypeReg},
		{Name: "../../outside", Typeflag: tar.TypeReg},
	}, map[string]string{
		"./lib/x86_64-linux-gnu/libfoo.so.1.2": "ELF",
		"../../outside":                        "stays inside",
	})), "foo")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := tr.file("/lib64/ld.so"); err != nil || string(b) != "ELF" {
		t.Errorf("two-level symlink: %q, %v", b, err)
	}
	real, links, err := tr.resolveChain("/lib64/ld.so")
	if err != nil || real != "/lib/x86_64-linux-gnu/libfoo.so.1.2" ||
		!reflect.DeepEqual(links, []string{"/lib64/ld.so", "/lib/x86_64-linux-gnu/libfoo.so.1"}) {
		t.Errorf("resolveChain: %s %v %v", real, links, err)
	}
	if b, err := tr.file("/sbin/hard"); err != nil || string(b) != "ELF" {
		t.Errorf("hard link: %q, %v", b, err)
	}
	// "../../outside" is cleaned to /outside: nothing can name a path
	// above the tree's root.
	if b, err := tr.file("/outside"); err != nil || string(b) != "stays inside" {
		t.Errorf("dot-dot member: %q, %v", b, err)
	}
	// A symlink climbing out resolves inside the tree (to /etc/hostname,
	// which the packages do not have) rather than to the host's file.
	if _, err := tr.file("/escape"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("escaping symlink: %v", err)
	}
	if _, ok := tr.nodes["/usr/share/doc/foo/changelog"]; ok {
		t.Error("documentation was kept")
	}
}

func TestTreeConflicts(t *testing.T) {
	tr := newTree()
	if err := tr.add("/etc/a", &node{typ: tar.TypeReg, data: []byte("1"), pkg: "p1"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.add("/etc/a", &node{typ: tar.TypeReg, data: []byte("1"), pkg: "p2"}); err != nil {
		t.Errorf("identical file from two packages: %v", err)
	}
	if err := tr.add("/etc/a", &node{typ: tar.TypeReg, data: []byte("2"), pkg: "p2"}); err == nil || !strings.Contains(err.Error(), "shipped differently by p1 and p2") {
		t.Errorf("conflicting file: %v", err)
	}
	if err := tr.add("/etc/a/b", &node{typ: tar.TypeReg, pkg: "p3"}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file under a file: %v", err)
	}
	loop := newTree()
	loop.add("/a", &node{typ: tar.TypeSymlink, target: "b"})
	loop.add("/b", &node{typ: tar.TypeSymlink, target: "a"})
	if _, err := loop.file("/a"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("symlink loop: %v", err)
	}
	if _, _, err := loop.resolveChain("/a"); err == nil {
		t.Error("resolveChain symlink loop: no error")
	}
}

// TestBusyboxApplets parses the host's busybox (the same package the image
// uses, when installed) and compares with what the binary itself lists.
func TestBusyboxApplets(t *testing.T) {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (apt-get install busybox-static)")
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := elf.NewFile(bytes.NewReader(data)); err != nil || f.Machine != elf.EM_X86_64 {
		t.Skip("host busybox is not an x86-64 ELF")
	}
	got, err := busyboxApplets(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed %d applets, busybox --list prints %d\nparsed: %v\nlisted: %v", len(got), len(want), got, want)
	}
}

func TestBusyboxAppletsErrors(t *testing.T) {
	table := func(names ...string) []byte {
		return []byte("junk\x00" + strings.Join(names, "\x00") + "\x00\x00more")
	}
	many := []string{"[", "[["}
	for c := 'a'; c <= 'z'; c++ {
		for d := 'a'; d <= 'b'; d++ {
			many = append(many, string([]rune{c, d}))
		}
	}
	if got, err := busyboxApplets(table(many...)); err != nil || len(got) != len(many) {
		t.Fatalf("synthetic table: %d, %v", len(got), err)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"no table", []byte("no applets here"), "not found"},
		{"unsorted", table(append(append([]string(nil), many...), "aa")...), "not sorted"},
		{"bad name", table(append(append([]string(nil), many...), "z\x01")...), "unexpected applet name"},
		{"too few", table("[", "[[", "ls"), "only 3 applets"},
		{"twice", append(table(many...), table(many...)...), "found twice"},
	}
	for _, tt := range tests {
		if _, err := busyboxApplets(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestCABundle(t *testing.T) {
	tr := newTree()
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
	for _, n := range []string{"b", "a", "c", "d", "e", "f", "g", "h", "i", "j"} {
		body := pem
		if n != "a" {
			body += "\n"
		}
		tr.add("/usr/share/ca-certificates/mozilla/"+n+".crt", &node{typ: tar.TypeReg, data: []byte(n + body)})
	}
	got, err := caBundle(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "a"+pem+"\nb"+pem+"\nc") || !strings.HasSuffix(string(got), "j"+pem+"\n") {
		t.Errorf("bundle not sorted and newline-separated:\n%s", got)
	}
	if _, err := caBundle(newTree()); err == nil {
		t.Error("empty bundle accepted")
	}
}
