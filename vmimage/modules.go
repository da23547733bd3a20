package vmimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"path"
	"sort"
	"strings"
)

// kmod is one loadable module found in the kernel package.
type kmod struct {
	name    string   // module name (underscores), as the kernel knows it
	path    string   // absolute path in the package and in the guest
	depends []string // direct hard dependencies (modinfo depends=)
	softPre []string // softdep pre: names or aliases, loaded first if available
	aliases []string
}

// modIndex describes the modules of one kernel: what can be loaded and what
// is built in. Debian's kernel package ships no modules.dep (depmod runs at
// install time), so dependencies come from each module's .modinfo section,
// which is where depmod reads them too.
type modIndex struct {
	mods    map[string]*kmod
	alias   map[string][]string // alias -> module names providing it
	builtin map[string]bool     // names and aliases of built-in modules
}

// modName is the kernel's name for a module file: basename without .ko,
// dashes as underscores.
func modName(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(p), ".ko"), "-", "_")
}

// indexModules reads /lib/modules/<kver> from t.
func indexModules(t *tree, kver string) (*modIndex, error) {
	root := "/lib/modules/" + kver
	idx := &modIndex{mods: map[string]*kmod{}, alias: map[string][]string{}, builtin: map[string]bool{}}
	paths := t.list(root + "/kernel")
	sort.Strings(paths)
	for _, p := range paths {
		n := t.nodes[p]
		if n.typ != tar.TypeReg {
			continue
		}
		if strings.HasSuffix(p, ".ko.xz") || strings.HasSuffix(p, ".ko.zst") || strings.HasSuffix(p, ".ko.gz") {
			return nil, fmt.Errorf("%s: compressed modules are not supported (the guest loads .ko files with finit_module as they are)", p)
		}
		if !strings.HasSuffix(p, ".ko") {
			continue
		}
		m, err := parseModinfo(p, n.data)
		if err != nil {
			return nil, err
		}
		if prev, ok := idx.mods[m.name]; ok {
			return nil, fmt.Errorf("module %s is both %s and %s", m.name, prev.path, m.path)
		}
		idx.mods[m.name] = m
		for _, a := range m.aliases {
			idx.alias[a] = append(idx.alias[a], m.name)
		}
	}
	if len(idx.mods) == 0 {
		return nil, fmt.Errorf("no modules under %s/kernel", root)
	}
	if b, err := t.file(root + "/modules.builtin"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				idx.builtin[modName(line)] = true
			}
		}
	} else {
		return nil, fmt.Errorf("kernel package: %w", err)
	}
	// modules.builtin.modinfo: NUL-separated "name.key=value" records; the
	// aliases of built-in modules satisfy soft dependencies.
	if b, err := t.file(root + "/modules.builtin.modinfo"); err == nil {
		for _, rec := range bytes.Split(b, []byte{0}) {
			name, kv, ok := strings.Cut(string(rec), ".")
			if !ok {
				continue
			}
			if a, ok := strings.CutPrefix(kv, "alias="); ok {
				idx.builtin[a] = true
			}
			idx.builtin[name] = true
		}
	}
	return idx, nil
}

// parseModinfo reads the .modinfo section of a module file.
func parseModinfo(p string, data []byte) (*kmod, error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", p)
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: .modinfo: %w", p, err)
	}
	m := &kmod{name: modName(p), path: p}
	for _, rec := range bytes.Split(b, []byte{0}) {
		k, v, ok := strings.Cut(string(rec), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.name = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.depends = append(m.depends, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case "alias":
			m.aliases = append(m.aliases, v)
		case "softdep":
			// "pre: a b post: c"; a bare list means pre (modprobe's reading).
			mode := "pre:"
			for _, w := range strings.Fields(v) {
				if w == "pre:" || w == "post:" {
					mode = w
					continue
				}
				if mode == "pre:" {
					m.softPre = append(m.softPre, w)
				}
			}
		}
	}
	return m, nil
}

// moduleSet is the result of resolving the wanted modules of a kernel.
type moduleSet struct {
	Ordered []*kmod             // every module to ship, dependencies first
	Deps    map[string][]string // module -> all modules it needs, in load order
	Builtin []string            // wanted but built into the kernel
	Absent  []string            // wanted but not in this kernel at all
}

// resolve computes the modules to ship for wanted, with their dependency
// closure, in a load order. Hard dependencies must exist; a soft "pre"
// dependency is added when a module provides it and nothing built in does
// (a built-in provider, such as crc32c_generic for "crc32c", needs nothing).
func (idx *modIndex) resolve(wanted []string) (*moduleSet, error) {
	set := &moduleSet{Deps: map[string][]string{}}
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), name)
		case 2:
			return nil
		}
		m := idx.mods[name]
		state[name] = 1
		chain = append(chain, name)
		for _, d := range idx.directDeps(m) {
			if idx.mods[d] == nil {
				if idx.builtin[d] {
					continue
				}
				return fmt.Errorf("module %s depends on %s, which the kernel package does not have", name, d)
			}
			if err := visit(d, chain); err != nil {
				return err
			}
		}
		state[name] = 2
		set.Ordered = append(set.Ordered, m)
		return nil
	}
	seen := map[string]bool{}
	for _, w := range wanted {
		w = strings.ReplaceAll(w, "-", "_")
		if seen[w] {
			continue
		}
		seen[w] = true
		switch {
		case idx.mods[w] != nil:
			if err := visit(w, nil); err != nil {
				return nil, err
			}
		case idx.builtin[w]:
			set.Builtin = append(set.Builtin, w)
		default:
			set.Absent = append(set.Absent, w)
		}
	}
	// Every module's full dependency list, in the global load order, so a
	// loader can load "X and what it needs" without recursing.
	pos := map[string]int{}
	for i, m := range set.Ordered {
		pos[m.name] = i
	}
	for _, m := range set.Ordered {
		all := map[string]bool{}
		var collect func(n string)
		collect = func(n string) {
			for _, d := range idx.directDeps(idx.mods[n]) {
				if idx.mods[d] != nil && !all[d] {
					all[d] = true
					collect(d)
				}
			}
		}
		collect(m.name)
		deps := make([]string, 0, len(all))
		for d := range all {
			deps = append(deps, d)
		}
		sort.Slice(deps, func(i, j int) bool { return pos[deps[i]] < pos[deps[j]] })
		set.Deps[m.name] = deps
	}
	return set, nil
}

// directDeps is a module's hard dependencies plus the loadable providers of
// its soft pre-dependencies, sorted for a stable order.
func (idx *modIndex) directDeps(m *kmod) []string {
	deps := append([]string(nil), m.depends...)
	for _, s := range m.softPre {
		if idx.builtin[s] || idx.builtin[strings.ReplaceAll(s, "-", "_")] {
			continue
		}
		if n := strings.ReplaceAll(s, "-", "_"); idx.mods[n] != nil {
			deps = append(deps, n)
			continue
		}
		if providers := idx.alias[s]; len(providers) > 0 {
			p := append([]string(nil), providers...)
			sort.Strings(p)
			deps = append(deps, p[0])
		}
	}
	sort.Strings(deps)
	return deps
}

// modulesTxt renders /etc/vmbox/modules.txt: one module per line, in a
// valid load order, as "<name> <path in guest> <deps>", where deps is every
// module it needs (transitively, comma-separated, in load order) or "-".
func (s *moduleSet) modulesTxt() []byte {
	var b strings.Builder
	for _, m := range s.Ordered {
		deps := "-"
		if d := s.Deps[m.name]; len(d) > 0 {
			deps = strings.Join(d, ",")
		}
		fmt.Fprintf(&b, "%s %s %s\n", m.name, m.path, deps)
	}
	return []byte(b.String())
}
