package containertest

import (
	"os"
	"path/filepath"
)

// cgroupRoots are where a test's cgroup parent can have a directory: the
// v2 hierarchy or the v1 hierarchies the container package uses, and the
// unified hierarchy of hybrid hosts.
var cgroupRoots = [...]string{"/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/devices", "/sys/fs/cgroup/unified"}

// CgroupCount counts the cgroups under parent (a v1 cgroup spans several
// hierarchies: it counts once).
func CgroupCount(parent string) int {
	names := map[string]bool{}
	for _, root := range cgroupRoots {
		ents, _ := os.ReadDir(filepath.Join(root, parent))
		for _, e := range ents {
			if e.IsDir() {
				names[e.Name()] = true
			}
		}
	}
	return len(names)
}

// RemoveCgroupParent removes a test's cgroup parent, once the cgroups under
// it are gone, from every hierarchy.
func RemoveCgroupParent(parent string) {
	for _, root := range cgroupRoots {
		os.Remove(filepath.Join(root, parent))
	}
}
