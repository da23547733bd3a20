package boot

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/vmbox/vmbox/guest/api/vmconfig"
)

// kernelModule is one kernel module listed in modules.txt.
type kernelModule struct {
	Name string   // canonical name: dashes become underscores, as in /sys/module
	Path string   // absolute path of the .ko file
	Deps []string // canonical names of the modules it needs, all listed before it
}

// moduleList is the parsed modules.txt: modules in a valid load order.
type moduleList struct {
	Modules []kernelModule
	index   map[string]int
}

// canonicalModuleName spells a module name the way the kernel does.
func canonicalModuleName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// readModuleList parses the modules.txt file at p.
func readModuleList(p string) (*moduleList, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	defer f.Close()
	l, err := parseModuleList(f)
	if err != nil {
		return nil, fmt.Errorf("module list %s: %w", p, err)
	}
	return l, nil
}

// parseModuleList parses modules.txt: one module per line,
// "<name> <absolute path> <comma-separated deps or ->", dependencies before
// their users. Blank lines and lines starting with '#' are ignored.
func parseModuleList(r io.Reader) (*moduleList, error) {
	l := &moduleList{index: map[string]int{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want \"<name> <path> <deps|->\", got %q", n, line)
		}
		name := canonicalModuleName(f[0])
		if !vmconfig.ValidModuleName(name) {
			return nil, fmt.Errorf("line %d: module name %q is not valid", n, f[0])
		}
		if _, dup := l.index[name]; dup {
			return nil, fmt.Errorf("line %d: module %s listed twice", n, name)
		}
		if !path.IsAbs(f[1]) || path.Clean(f[1]) != f[1] {
			return nil, fmt.Errorf("line %d: module path %q is not a clean absolute path", n, f[1])
		}
		m := kernelModule{Name: name, Path: f[1]}
		if f[2] != "-" {
			for _, d := range strings.Split(f[2], ",") {
				d = canonicalModuleName(d)
				if d == "" {
					return nil, fmt.Errorf("line %d: empty dependency name", n)
				}
				if d == name {
					return nil, fmt.Errorf("line %d: module %s depends on itself", n, name)
				}
				if _, ok := l.index[d]; !ok {
					return nil, fmt.Errorf("line %d: module %s needs %s, which is not listed before it", n, name, d)
				}
				m.Deps = append(m.Deps, d)
			}
		}
		l.index[name] = len(l.Modules)
		l.Modules = append(l.Modules, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return l, nil
}

// Lookup returns the module called name (either spelling).
func (l *moduleList) Lookup(name string) (kernelModule, bool) {
	i, ok := l.index[canonicalModuleName(name)]
	if !ok {
		return kernelModule{}, false
	}
	return l.Modules[i], true
}

// Closure returns the named modules and everything they need, each once,
// in load order (the file's order, which puts dependencies first).
func (l *moduleList) Closure(names ...string) ([]kernelModule, error) {
	want := make([]bool, len(l.Modules))
	var visit func(name string) error
	visit = func(name string) error {
		i, ok := l.index[canonicalModuleName(name)]
		if !ok {
			return fmt.Errorf("module %s is not in the module list", name)
		}
		if want[i] {
			return nil
		}
		want[i] = true
		for _, d := range l.Modules[i].Deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	var out []kernelModule
	for i, w := range want {
		if w {
			out = append(out, l.Modules[i])
		}
	}
	return out, nil
}
