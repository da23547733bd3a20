package vmimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// sharedClosure returns every path the dynamically linked executable at bin
// needs to run, found the way ld.so would within t: its interpreter
// (PT_INTERP) and the DT_NEEDED libraries, recursively, searched in the
// architecture's default library directories. Symlinks met on the way are
// included along with their targets so the libraries sit at their real
// paths. The result is sorted and includes bin.
func sharedClosure(t *tree, a archInfo, bin string) ([]string, error) {
	include := map[string]bool{}
	done := map[string]bool{}
	queue := []string{bin}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		real, links, err := t.resolveChain(p)
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			include[l] = true
		}
		include[real] = true
		if done[real] {
			continue
		}
		done[real] = true
		f, err := elf.NewFile(bytes.NewReader(t.nodes[real].data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", real, err)
		}
		if f.Machine != a.machine {
			return nil, fmt.Errorf("%s is %v, not %v", real, f.Machine, a.machine)
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("%s: PT_INTERP: %w", real, err)
			}
			queue = append(queue, string(bytes.TrimRight(b, "\x00")))
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", real, err)
		}
		for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
			if rp, _ := f.DynString(tag); len(rp) > 0 {
				return nil, fmt.Errorf("%s: has %v %q, which vmimage does not resolve", real, tag, rp)
			}
		}
		for _, lib := range needed {
			lp, err := findLib(t, a, lib)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", p, lib, err)
			}
			queue = append(queue, lp)
		}
	}
	out := make([]string, 0, len(include))
	for p := range include {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func findLib(t *tree, a archInfo, lib string) (string, error) {
	if strings.Contains(lib, "/") {
		return lib, nil
	}
	for _, dir := range a.libDirs() {
		p := dir + "/" + lib
		if _, n, err := t.lookup(p, true); err == nil && n.typ == tar.TypeReg {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in %s of the pinned packages (add the package that ships it to basePackages and update the lock)", strings.Join(a.libDirs(), ", "))
}

// resolveChain follows p through symlinks to a regular file and returns the
// file's path and every symlink path passed on the way (only symlinks in
// the final component are followed; directory components must be real
// directories, as they are in Debian's packages).
func (t *tree) resolveChain(p string) (string, []string, error) {
	var links []string
	cur, err := cleanAbs(p)
	if err != nil {
		return "", nil, err
	}
	for i := 0; i <= maxSymlinks; i++ {
		n, ok := t.nodes[cur]
		if !ok {
			return "", nil, fmt.Errorf("%s: not found in the pinned packages", cur)
		}
		switch n.typ {
		case tar.TypeReg:
			return cur, links, nil
		case tar.TypeSymlink:
			links = append(links, cur)
			target := n.target
			if !strings.HasPrefix(target, "/") {
				target = cur[:strings.LastIndexByte(cur, '/')+1] + target
			}
			if cur, err = cleanAbs(target); err != nil {
				return "", nil, err
			}
		default:
			return "", nil, fmt.Errorf("%s: not a regular file", cur)
		}
	}
	return "", nil, errors.New(p + ": too many levels of symbolic links")
}

// checkStaticExecutable checks that b is an executable for a that needs no
// dynamic loader: /init runs before any library could be found.
func checkStaticExecutable(b []byte, a archInfo) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	if f.Machine != a.machine {
		return fmt.Errorf("built for %v, but the image is %s (%v)", f.Machine, a.name, a.machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (has an ELF interpreter); build it static, e.g. with CGO_ENABLED=0")
		}
	}
	return nil
}
