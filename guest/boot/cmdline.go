package boot

import (
	"fmt"
	"os"
	"strings"
)

// Kernel command line parameters the guest understands.
const (
	// cmdlineDebug ("vmbox.debug") makes boot verbose on the console and, if
	// the agent exits, gives a shell on the console before powering off.
	cmdlineDebug = "vmbox.debug"
	// cmdlineShutdown ("vmbox.shutdown=reboot|poweroff") picks the reboot(2)
	// command that ends the VM. QEMU with -no-reboot exits on "reboot" on
	// every machine type, while "poweroff" needs an ACPI power-off device
	// (without one the kernel halts and the VM hangs). Default: poweroff.
	cmdlineShutdown = "vmbox.shutdown"
)

// kernelCmdline is a parsed kernel command line: parameter name to value. A bare
// word maps to "".
type kernelCmdline map[string]string

// readKernelCmdline parses /proc/cmdline.
func readKernelCmdline() (kernelCmdline, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, fmt.Errorf("read kernel command line: %w", err)
	}
	return parseKernelCmdline(string(b)), nil
}

// parseKernelCmdline splits a kernel command line the way the kernel does: words
// separated by white space, double quotes group (and are removed), and the
// first '=' outside quotes separates name from value. Everything after a
// lone "--" belongs to init, not the kernel, and is ignored. A repeated
// name keeps its last value, as the kernel does for most parameters.
func parseKernelCmdline(s string) kernelCmdline {
	c := kernelCmdline{}
	for _, w := range splitCmdline(s) {
		if w == "--" {
			break
		}
		name, value, _ := strings.Cut(w, "=")
		if name == "" {
			continue
		}
		c[name] = value
	}
	return c
}

func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// Flag reports whether a boolean parameter is set: present bare, or with a
// value other than 0, n, no, off or false.
func (c kernelCmdline) Flag(name string) bool {
	v, ok := c[name]
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "0", "n", "no", "off", "false":
		return false
	}
	return true
}

// Debug reports whether vmbox.debug is set.
func (c kernelCmdline) Debug() bool { return c.Flag(cmdlineDebug) }
