package boot

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	ID, Parent   int
	Root         string // root of the mount within its file system
	MountPoint   string
	Options      string // per-mount options
	FSType       string
	Source       string
	SuperOptions string
}

// parseMountInfo parses the format of /proc/<pid>/mountinfo (see proc(5)):
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
// Octal escapes (\040 for a space) in paths are decoded.
func parseMountInfo(r io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: bad mount IDs: %q", n, line)
		}
		m := mountInfo{
			ID:         id,
			Parent:     parent,
			Root:       unescapeMount(f[3]),
			MountPoint: unescapeMount(f[4]),
			Options:    f[5],
			FSType:     f[sep+1],
			Source:     unescapeMount(f[sep+2]),
		}
		if len(f) > sep+3 {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMount decodes the kernel's \ooo octal escapes.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMounted reports whether path is a mount point in infos, and the top-most
// mount there (the last one listed wins, as later mounts stack on top).
func isMounted(infos []mountInfo, path string) (mountInfo, bool) {
	var found mountInfo
	ok := false
	for _, m := range infos {
		if m.MountPoint == path {
			found, ok = m, true
		}
	}
	return found, ok
}
