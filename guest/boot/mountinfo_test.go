package boot

import (
	"fmt"
	"strings"
	"testing"
)

const testMountinfo = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
24 1 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs devtmpfs rw,size=1000k,nr_inodes=250,mode=755
36 35 98:0 /mnt1 /mnt\040with\040space rw,noatime master:1 propagate_from:2 - ext3 /dev/root rw,errors=continue
40 23 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
41 22 0:40 / /proc rw,relatime - proc proc rw
42 1 0:41 / /tmp rw - tmpfs tmpfs
`

func TestParseMountInfo(t *testing.T) {
	infos, err := parseMountInfo(strings.NewReader(testMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 7 {
		t.Fatalf("got %d entries", len(infos))
	}
	m := infos[3]
	if m.ID != 36 || m.Parent != 35 || m.Root != "/mnt1" || m.MountPoint != "/mnt with space" ||
		m.FSType != "ext3" || m.Source != "/dev/root" || m.SuperOptions != "rw,errors=continue" || m.Options != "rw,noatime" {
		t.Fatalf("entry with optional fields parsed as %+v", m)
	}
	if infos[6].SuperOptions != "" || infos[6].FSType != "tmpfs" {
		t.Fatalf("entry without super options parsed as %+v", infos[6])
	}
	tests := []struct {
		path   string
		ok     bool
		fstype string
		id     int
	}{
		{"/proc", true, "proc", 41}, // the later mount is on top
		{"/sys/fs/cgroup", true, "cgroup2", 40},
		{"/mnt with space", true, "ext3", 36},
		{"/run", false, "", 0},
		{"/sys/fs", false, "", 0},
	}
	for _, tt := range tests {
		got, ok := isMounted(infos, tt.path)
		if ok != tt.ok || got.FSType != tt.fstype || got.ID != tt.id {
			t.Errorf("Mounted(%q) = %+v, %v", tt.path, got, ok)
		}
	}
}

func TestParseMountInfoMalformed(t *testing.T) {
	for _, in := range []string{
		"22 1 0:21 / /proc rw shared:5 proc proc rw\n", // no separator
		"x 1 0:21 / /proc rw - proc proc rw\n",         // bad ID
		"22 1 0:21 / /proc rw -\n",                     // nothing after separator
	} {
		if _, err := parseMountInfo(strings.NewReader(in)); err == nil {
			t.Errorf("ParseMountInfo(%q): no error", in)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:   "/a b",
		`/tab\011x`: "/tab\tx",
		`/back\134`: `/back\`,
		`/short\04`: `/short\04`,
		`/plain`:    "/plain",
		`/bad\999`:  `/bad\999`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want string
		bad  bool
	}{
		{"0\n", "[0]", false},
		{"0-3", "[0 1 2 3]", false},
		{"0,2-3,7", "[0 2 3 7]", false},
		{"", "[]", false},
		{"3-1", "", true},
		{"a", "", true},
		{"1-", "", true},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseCPUList(%q): no error", tt.in)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}
