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

// Module is one kernel module listed in modules.txt.
type Module struct {
	Name string   // canonical name: dashes become underscores, as in /sys/module
	Path string   // absolute path of the .ko file
	Deps []string // canonical names of the modules it needs, all listed before it
}

// ModuleList is the parsed modules.txt: modules in a valid load order.
type ModuleList struct {
	Modules []Module
	index   map[string]int
}

// CanonicalModuleName spells a module name the way the kernel does.
func CanonicalModuleName(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}

// ReadModuleList parses the modules.txt file at p.
func ReadModuleList(p string) (*ModuleList, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read module list: %w", err)
	}
	defer f.Close()
	l, err := ParseModuleList(f)
	if err != nil {
		return nil, fmt.Errorf("module list %s: %w", p, err)
	}
	return l, nil
}

// ParseModuleList parses modules.txt: one module per line,
// "<name> <absolute path> <comma-separated deps or ->", dependencies before
// their users. Blank lines and lines starting with '#' are ignored.
func ParseModuleList(r io.Reader) (*ModuleList, error) {
	l := &ModuleList{index: map[string]int{}}
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
		name := CanonicalModuleName(f[0])
		if !vmconfig.ValidModuleName(name) {
			return nil, fmt.Errorf("line %d: module name %q is not valid", n, f[0])
		}
		if _, dup := l.index[name]; dup {
			return nil, fmt.Errorf("line %d: module %s listed twice", n, name)
		}
		if !path.IsAbs(f[1]) || path.Clean(f[1]) != f[1] {
			return nil, fmt.Errorf("line %d: module path %q is not a clean absolute path", n, f[1])
		}
		m := Module{Name: name, Path: f[1]}
		if f[2] != "-" {
			for _, d := range strings.Split(f[2], ",") {
				d = CanonicalModuleName(d)
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
func (l *ModuleList) Lookup(name string) (Module, bool) {
	i, ok := l.index[CanonicalModuleName(name)]
	if !ok {
		return Module{}, false
	}
	return l.Modules[i], true
}

// Closure returns the named modules and everything they need, each once,
// in load order (the file's order, which puts dependencies first).
func (l *ModuleList) Closure(names ...string) ([]Module, error) {
	want := make([]bool, len(l.Modules))
	var visit func(name string) error
	visit = func(name string) error {
		i, ok := l.index[CanonicalModuleName(name)]
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
	var out []Module
	for i, w := range want {
		if w {
			out = append(out, l.Modules[i])
		}
	}
	return out, nil
}
