package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvBinary names the environment variable that overrides the QEMU binary.
const EnvBinary = "VMBOX_QEMU"

// binaryName is the QEMU system emulator for a guest architecture.
func binaryName(arch string) string {
	if arch == "arm64" {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}

// wellKnownDirs are where QEMU installs itself outside PATH: the Windows
// installer does not add its folder to PATH, and a shell started from a GUI
// on macOS may lack Homebrew's prefix.
func wellKnownDirs(goos string) []string {
	switch goos {
	case "windows":
		var dirs []string
		for _, env := range []string{"ProgramFiles", "ProgramW6432"} {
			if d := os.Getenv(env); d != "" {
				dirs = append(dirs, filepath.Join(d, "qemu"))
			}
		}
		return dirs
	case "darwin":
		return []string{"/opt/homebrew/bin", "/usr/local/bin", "/opt/local/bin"}
	}
	return nil
}

// findBinary resolves the QEMU binary for arch: override (from the named
// source, Options.Binary or VMBOX_QEMU) if set, else the emulator on PATH,
// else in a well-known install folder. Its error is one line that says what
// to install.
func findBinary(override, source, goos, arch string, osRelease func() string) (string, error) {
	if override != "" {
		p, err := exec.LookPath(override)
		if err != nil {
			return "", fmt.Errorf("QEMU binary %q from %s is not usable: %w", override, source, errors.Unwrap(err))
		}
		return p, nil
	}
	name := binaryName(arch)
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range wellKnownDirs(goos) {
		p := filepath.Join(d, name)
		if goos == "windows" {
			p += ".exe"
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: %s", name, installHint(goos, arch, osRelease()))
}

// installHint says how to install QEMU for a guest of arch on goos. For
// Linux it is chosen by /etc/os-release's ID and ID_LIKE.
func installHint(goos, arch, osRelease string) string {
	switch goos {
	case "darwin":
		return `install it with "brew install qemu"`
	case "windows":
		return "install QEMU for Windows (the qemu-w64-setup installer) or set " + EnvBinary + " to qemu-system-x86_64.exe"
	case "linux":
	default:
		return "install QEMU with your system's package manager or set " + EnvBinary
	}
	arm := arch == "arm64"
	ids := osIDs(osRelease)
	has := func(names ...string) bool {
		for _, n := range names {
			for _, id := range ids {
				if id == n {
					return true
				}
			}
		}
		return false
	}
	pick := func(x86, aarch64 string) string {
		if arm {
			return aarch64
		}
		return x86
	}
	switch {
	case has("debian", "ubuntu"):
		return `install it with "apt-get install ` + pick("qemu-system-x86", "qemu-system-arm") + `"`
	case has("fedora", "rhel", "centos"):
		return `install it with "dnf install ` + pick("qemu-system-x86-core", "qemu-system-aarch64-core") + `"`
	case has("arch"):
		return `install it with "pacman -S ` + pick("qemu-system-x86", "qemu-system-aarch64") + `"`
	case has("opensuse", "suse"):
		return `install it with "zypper install ` + pick("qemu-x86", "qemu-arm") + `"`
	case has("alpine"):
		return `install it with "apk add ` + pick("qemu-system-x86_64", "qemu-system-aarch64") + `"`
	}
	return pick(`install it with "apt-get install qemu-system-x86" (Debian/Ubuntu) or "dnf install qemu-system-x86-core" (Fedora)`,
		`install it with "apt-get install qemu-system-arm" (Debian/Ubuntu) or "dnf install qemu-system-aarch64-core" (Fedora)`)
}

// osIDs returns ID and the words of ID_LIKE from an os-release file's text.
func osIDs(osRelease string) []string {
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(osRelease))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || (k != "ID" && k != "ID_LIKE") {
			continue
		}
		v = strings.Trim(v, `"'`)
		for _, w := range strings.Fields(v) {
			ids = append(ids, strings.ToLower(w))
		}
	}
	// opensuse-leap, opensuse-tumbleweed
	for _, id := range ids {
		if strings.HasPrefix(id, "opensuse") {
			ids = append(ids, "opensuse")
		}
	}
	return ids
}

// readOSRelease returns /etc/os-release, or "" if there is none.
func readOSRelease() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := os.ReadFile(p)
		if err == nil {
			return string(b)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return ""
}
