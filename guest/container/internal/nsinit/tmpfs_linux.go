package nsinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// tmpfsFlagWords are the mount flags --tmpfs options may set or clear.
var tmpfsFlagWords = map[string]struct {
	flag  uintptr
	clear bool
}{
	"ro": {unix.MS_RDONLY, false}, "rw": {unix.MS_RDONLY, true},
	"noexec": {unix.MS_NOEXEC, false}, "exec": {unix.MS_NOEXEC, true},
	"nosuid": {unix.MS_NOSUID, false}, "suid": {unix.MS_NOSUID, true},
	"nodev": {unix.MS_NODEV, false}, "dev": {unix.MS_NODEV, true},
	"noatime": {unix.MS_NOATIME, false}, "atime": {unix.MS_NOATIME, true},
}

// TmpfsOptions reads Docker's --tmpfs options ("size=64m,mode=1777,exec",
// comma separated) into mount flags and tmpfs data. As Docker's, a tmpfs
// is noexec, nosuid and nodev with mode 1777 unless the options say
// otherwise.
func TmpfsOptions(opts string) (flags uintptr, data string, err error) {
	flags = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV
	var kept []string
	mode := false
	for _, o := range strings.Split(opts, ",") {
		if o == "" {
			continue
		}
		if w, ok := tmpfsFlagWords[o]; ok {
			if w.clear {
				flags &^= w.flag
			} else {
				flags |= w.flag
			}
			continue
		}
		key, value, ok := strings.Cut(o, "=")
		switch {
		case !ok:
			return 0, "", fmt.Errorf("unknown tmpfs option %q", o)
		case key == "size" || key == "nr_inodes":
			if value == "" || strings.TrimRight(value, "0123456789kKmMgG%") != "" {
				return 0, "", fmt.Errorf("invalid tmpfs option %q", o)
			}
		case key == "mode":
			if _, err := strconv.ParseUint(value, 8, 32); err != nil {
				return 0, "", fmt.Errorf("invalid tmpfs option %q: the mode is octal", o)
			}
			mode = true
		case key == "uid" || key == "gid":
			if _, err := strconv.ParseUint(value, 10, 32); err != nil {
				return 0, "", fmt.Errorf("invalid tmpfs option %q", o)
			}
		default:
			return 0, "", fmt.Errorf("unknown tmpfs option %q", o)
		}
		kept = append(kept, o)
	}
	if !mode {
		kept = append(kept, "mode=1777")
	}
	return flags, strings.Join(kept, ","), nil
}

// tmpfsMount mounts a new tmpfs at m.Target, resolved inside rootfs and
// created when missing.
func tmpfsMount(rootfs string, m Mount) error {
	if !filepath.IsAbs(m.Target) {
		return fmt.Errorf("tmpfs target %q is not absolute", m.Target)
	}
	flags, data, err := TmpfsOptions(m.Options)
	if err != nil {
		return err
	}
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	target, err := securejoin.SecureJoin(rootfs, m.Target)
	if err != nil {
		return fmt.Errorf("tmpfs target %s: %w", m.Target, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("tmpfs target %s: %w", m.Target, err)
	}
	if err := ensureDir(target); err != nil {
		return fmt.Errorf("tmpfs target %s: %w", m.Target, err)
	}
	return mount("tmpfs", target, "tmpfs", flags, data)
}
