package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// maxSocketPath is the longest unix socket path sockaddr_un holds on goos,
// not counting the terminating NUL: sun_path is 108 bytes on Linux and
// Windows, 104 on macOS and the BSDs.
func maxSocketPath(goos string) int {
	switch goos {
	case "linux", "windows", "android":
		return 107
	}
	return 103
}

// socketAlias returns a path that reaches the socket at path and fits
// sockaddr_un, and a function that removes whatever it created.
//
// QEMU is given the socket relative to the instance directory (its working
// directory), so a long VMBOX_HOME never reaches its bind(). This process
// has no such luxury without changing its working directory, which is
// shared by all goroutines; instead a long path is reached through a
// symbolic link to the instance directory, made in a fresh private
// directory under the temporary folder (or /tmp when that too is long, as
// it can be on macOS). Only connect() resolves the path, so the link is
// removed as soon as the connection is made.
func socketAlias(path string) (string, func(), error) {
	noop := func() {}
	limit := maxSocketPath(runtime.GOOS)
	if len(path) <= limit {
		return path, noop, nil
	}
	bases := []string{os.TempDir()}
	if runtime.GOOS != "windows" {
		bases = append(bases, "/tmp")
	}
	var lastErr error
	for _, base := range bases {
		// "vmbox-" + 10 random digits + "/d/" + the socket's name.
		if len(base)+len("/vmbox-0123456789/d/")+len(filepath.Base(path)) > limit {
			continue
		}
		tmp, err := os.MkdirTemp(base, "vmbox-")
		if err != nil {
			lastErr = err
			continue
		}
		link := filepath.Join(tmp, "d")
		if err := os.Symlink(filepath.Dir(path), link); err != nil {
			os.RemoveAll(tmp)
			lastErr = err
			continue
		}
		alias := filepath.Join(link, filepath.Base(path))
		if len(alias) > limit {
			os.RemoveAll(tmp)
			continue
		}
		return alias, func() { os.RemoveAll(tmp) }, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no short temporary folder")
	}
	return "", noop, fmt.Errorf("socket path %s is longer than %d bytes and no short alias could be made: %w", path, limit, lastErr)
}
