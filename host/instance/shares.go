package instance

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/vmbox/vmbox/guest/api"
)

// Mount is a host folder an instance shares into its VM besides the
// default ones (the user's home and the temporary directory).
type Mount struct {
	HostPath string `json:"hostPath"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// ParseMount reads a --mount value, HOSTDIR[:ro|:rw], as the host names
// it: the folder must exist, and the VM must be able to mount it.
func ParseMount(spec string) (Mount, error) {
	p, ro := spec, false
	// A Windows drive letter's colon is the path's, not an option's.
	if i := strings.LastIndex(spec, ":"); i > 1 {
		switch spec[i+1:] {
		case "ro":
			p, ro = spec[:i], true
		case "rw":
			p = spec[:i]
		}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return Mount{}, fmt.Errorf("invalid --mount %q: %w", spec, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Mount{}, fmt.Errorf("invalid --mount %q: %w", spec, err)
	}
	if !fi.IsDir() {
		return Mount{}, fmt.Errorf("invalid --mount %q: %s is not a directory", spec, abs)
	}
	if err := api.CheckShareGuestPath(GuestPath(abs)); err != nil {
		return Mount{}, fmt.Errorf("invalid --mount %q: %w", spec, err)
	}
	return Mount{HostPath: abs, ReadOnly: ro}, nil
}

// GuestPath is where the VM sees the host path p: the same path on Unix
// hosts, /mnt/DRIVE/... for a Windows path (C:\Users\me is
// /mnt/c/Users/me), so that host paths given to -v need no translating
// there and little on Windows.
func GuestPath(p string) string { return guestPathOn(runtime.GOOS, p) }

func guestPathOn(goos, p string) string {
	if goos != "windows" {
		return path.Clean(filepath.ToSlash(p))
	}
	if vp, ok := api.WindowsPathInVM(p); ok {
		return vp
	}
	return path.Clean(strings.ReplaceAll(p, `\`, "/"))
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

// IsHostPath says whether a -v source names a path of the host, as
// opposed to a volume name: absolute or relative on this OS, or a Windows
// drive path.
func IsHostPath(p string) bool { return isHostPathOn(runtime.GOOS, p) }

func isHostPathOn(goos, p string) bool {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, ".") {
		return true
	}
	return goos == "windows" && len(p) >= 2 && p[1] == ':' && isLetter(p[0])
}

// Shares are the host folders the instance shares into its VM: the
// user's home directory and the temporary directory, read-write, and the
// configured mounts (which win over a default of the same path). A share
// inside another of the same access is left out: the outer one shows it.
func (c Config) Shares() []api.Share {
	var defaults []string
	if home, err := os.UserHomeDir(); err == nil {
		defaults = append(defaults, home)
	}
	defaults = append(defaults, os.TempDir())
	return sharesOf(defaults, c.Mounts, GuestPath)
}

func sharesOf(defaults []string, mounts []Mount, guestPath func(string) string) []api.Share {
	byGuest := map[string]api.Share{}
	for _, d := range defaults {
		if d == "" {
			continue
		}
		// The temporary directory is often a symlink (macOS: /var is
		// /private/var); the VM mounts it where the host names it.
		sh := api.Share{HostPath: d, GuestPath: guestPath(d)}
		if api.CheckShareGuestPath(sh.GuestPath) == nil {
			byGuest[sh.GuestPath] = sh
		}
	}
	for _, m := range mounts {
		sh := api.Share{HostPath: m.HostPath, GuestPath: guestPath(m.HostPath), ReadOnly: m.ReadOnly}
		byGuest[sh.GuestPath] = sh
	}
	var all []api.Share
	for _, sh := range byGuest {
		all = append(all, sh)
	}
	// Outer folders first: the VM mounts them in this order, so an inner
	// share lands on top of its outer one.
	slices.SortFunc(all, func(a, b api.Share) int { return strings.Compare(a.GuestPath, b.GuestPath) })
	var out []api.Share
	for _, sh := range all {
		// The innermost share holding it decides: the same access makes
		// it redundant, another needs it mounted on top.
		if outer, ok := ShareOf(out, sh.GuestPath); ok && outer.ReadOnly == sh.ReadOnly {
			continue
		}
		out = append(out, sh)
	}
	return out
}

// ShareOf returns the share that holds the VM path p, preferring the
// innermost.
func ShareOf(shares []api.Share, p string) (api.Share, bool) {
	var best api.Share
	found := false
	for _, sh := range shares {
		if api.ShareCovers(sh.GuestPath, p) && (!found || len(sh.GuestPath) > len(best.GuestPath)) {
			best, found = sh, true
		}
	}
	return best, found
}
