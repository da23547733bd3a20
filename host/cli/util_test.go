package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmbox/vmbox/host/instance"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		def     string
		want    int64
		wantErr bool
	}{
		{"2GiB", "MiB", 2 << 30, false},
		{"2g", "MiB", 2 << 30, false},
		{"512m", "", 512 << 20, false},
		{"4096", "MiB", 4096 << 20, false},
		{"100", "GiB", 100 << 30, false},
		{"1.5G", "", 3 << 29, false},
		{"", "", 0, true},
		{"-1G", "", 0, true},
		{"12parsecs", "", 0, true},
		{"G", "", 0, true},
	}
	for _, tc := range cases {
		got, err := parseSize(tc.in, tc.def)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseSize(%q, %q) = %d, %v; want %d, err %v", tc.in, tc.def, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSeekTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	content := "a\nb\nc\nd\n"
	os.WriteFile(p, []byte(content), 0o600)
	cases := []struct {
		n    int
		want string
	}{{0, ""}, {1, "d\n"}, {2, "c\nd\n"}, {4, content}, {10, content}}
	for _, tc := range cases {
		f, _ := os.Open(p)
		if err := seekTail(f, tc.n); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != tc.want {
			t.Errorf("tail %d = %q, want %q", tc.n, b, tc.want)
		}
	}
	// A long file crosses the read chunk boundary.
	long := strings.Repeat(strings.Repeat("x", 99)+"\n", 2000)
	os.WriteFile(p, []byte(long), 0o600)
	f, _ := os.Open(p)
	defer f.Close()
	seekTail(f, 1500)
	b, _ := io.ReadAll(f)
	if len(b) != 1500*100 {
		t.Fatalf("tail 1500 of long file: %d bytes", len(b))
	}
}

func TestParseTail(t *testing.T) {
	for in, want := range map[string]int{"all": -1, "": -1, "0": 0, "25": 25} {
		if got, err := parseTail(in); err != nil || got != want {
			t.Errorf("parseTail(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseTail("-3"); err == nil {
		t.Error("parseTail(-3) accepted")
	}
}

func TestCreateRefusesExistingWithoutChangingIt(t *testing.T) {
	t.Setenv("VMBOX_HOME", t.TempDir())
	t.Setenv("VMBOX_QEMU", "/bin/true") // create checks the driver is usable
	run := func(args ...string) int {
		return Execute(args, nil, io.Discard, io.Discard)
	}
	if code := run("create", "--name", "c", "--cpus", "1", "--disk", "1GiB"); code != 0 {
		t.Fatalf("create: exit %d", code)
	}
	if code := run("create", "--name", "c", "--cpus", "4"); code != 1 {
		t.Fatalf("second create: exit %d, want 1", code)
	}
	store := instance.Store{Root: os.Getenv("VMBOX_HOME")}
	inst, err := store.Get("c")
	if err != nil || inst.Config.CPUs != 1 {
		t.Fatalf("instance after refused create: %+v, %v", inst, err)
	}
}
