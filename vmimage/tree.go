package vmimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// node is one filesystem object unpacked from a package.
type node struct {
	typ    byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode   uint32
	target string // symlink target
	data   []byte
	pkg    string // package that shipped it
}

// tree is an in-memory union of the data of several .deb packages. Holding
// packages in memory instead of unpacking them keeps every path a map key:
// nothing a package contains can make the build write outside its output
// directory, whatever its names or symlinks say.
type tree struct {
	nodes map[string]*node // cleaned absolute paths
}

func newTree() *tree { return &tree{nodes: map[string]*node{"/": {typ: tar.TypeDir, mode: 0o755}}} }

// skipPrefixes are package contents the image never uses; not keeping them
// saves memory (documentation and translations are most of some packages).
var skipPrefixes = []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/lintian/", "/usr/share/bug/", "/usr/share/info/"}

// addDeb unpacks the data archive of the .deb at debPath into t. It uses
// dpkg-deb to get the data as a plain tar (the standard library cannot read
// the xz compression Debian uses) and reads the tar itself.
func (t *tree) addDeb(ctx context.Context, debPath, pkg string) error {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", debPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("dpkg-deb: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", debPath, err)
	}
	addErr := t.addTar(out, pkg)
	if addErr != nil {
		// Drain so dpkg-deb does not block on a full pipe before Wait.
		_, _ = io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", debPath, err, strings.TrimSpace(stderr.String()))
	}
	if addErr != nil {
		return fmt.Errorf("unpack %s: %w", pkg, addErr)
	}
	return nil
}

// checkControl checks that the .deb at debPath is the package and version
// p names. The hash check already proves the file is the one the lock
// recorded; this catches a lock whose name or version was edited by hand,
// which would otherwise put a wrong version into the manifest.
func checkControl(ctx context.Context, debPath string, p Package) error {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "--showformat=${Package} ${Version} ${Architecture}", "--show", debPath).Output()
	if err != nil {
		return fmt.Errorf("dpkg-deb --show %s: %w", debPath, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != p.Name || f[1] != p.Version || (f[2] != p.Arch && f[2] != "all") {
		return fmt.Errorf("%s is %q, but the lock says %s %s for %s", filepath.Base(debPath), strings.TrimSpace(string(out)), p.Name, p.Version, p.Arch)
	}
	return nil
}

// addTar adds the entries of a tar stream to t.
func (t *tree) addTar(r io.Reader, pkg string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := cleanAbs(h.Name)
		if err != nil {
			return err
		}
		if p == "/" {
			continue
		}
		skip := false
		for _, s := range skipPrefixes {
			if strings.HasPrefix(p+"/", s) {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		n := &node{mode: uint32(h.Mode) & 0o7777, pkg: pkg}
		switch h.Typeflag {
		case tar.TypeDir:
			n.typ = tar.TypeDir
		case tar.TypeReg:
			n.typ = tar.TypeReg
			if n.data, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case tar.TypeSymlink:
			n.typ = tar.TypeSymlink
			n.target = h.Linkname
		case tar.TypeLink:
			// A hard link: share the data of the earlier entry.
			lp, err := cleanAbs(h.Linkname)
			if err != nil {
				return err
			}
			old, ok := t.nodes[lp]
			if !ok || old.typ != tar.TypeReg {
				return fmt.Errorf("%s: hard link to %s, which is not a file unpacked before it", p, lp)
			}
			n.typ, n.data = tar.TypeReg, old.data
		default:
			// Device nodes and FIFOs do not occur in the packages used.
			return fmt.Errorf("%s: unsupported tar entry type %q", p, h.Typeflag)
		}
		if err := t.add(p, n); err != nil {
			return err
		}
	}
}

// add inserts n at p, creating missing parent directories. Directories
// merge; two packages shipping different objects at one path is an error.
func (t *tree) add(p string, n *node) error {
	if dir := path.Dir(p); dir != p {
		if parent, ok := t.nodes[dir]; !ok {
			if err := t.add(dir, &node{typ: tar.TypeDir, mode: 0o755, pkg: n.pkg}); err != nil {
				return err
			}
		} else if parent.typ != tar.TypeDir {
			return fmt.Errorf("%s: parent %s is not a directory", p, dir)
		}
	}
	old, ok := t.nodes[p]
	if !ok {
		t.nodes[p] = n
		return nil
	}
	switch {
	case old.typ == tar.TypeDir && n.typ == tar.TypeDir:
		return nil
	case old.typ == n.typ && old.target == n.target && bytes.Equal(old.data, n.data):
		return nil
	}
	return fmt.Errorf("%s: shipped differently by %s and %s", p, old.pkg, n.pkg)
}

// lookup returns the node at p, following symlinks in every component
// (including the last when follow is set), and the resolved path. Symlinks
// resolve inside the tree: ".." stops at its root, like chroot.
func (t *tree) lookup(p string, follow bool) (string, *node, error) {
	return t.walk(p, follow, 0)
}

const maxSymlinks = 40

func (t *tree) walk(p string, follow bool, depth int) (string, *node, error) {
	p, err := cleanAbs(p)
	if err != nil {
		return "", nil, err
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := path.Join(cur, part)
		n, ok := t.nodes[next]
		if !ok {
			return "", nil, fmt.Errorf("%s: not found", p)
		}
		last := i == len(parts)-1
		if n.typ == tar.TypeSymlink && (!last || follow) {
			if depth >= maxSymlinks {
				return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target := n.target
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := path.Join(append([]string{target}, parts[i+1:]...)...)
			return t.walk(rest, follow, depth+1)
		}
		if !last && n.typ != tar.TypeDir {
			return "", nil, fmt.Errorf("%s: %s is not a directory", p, next)
		}
		cur = next
	}
	return cur, t.nodes[cur], nil
}

// file returns the contents of the regular file at p (following symlinks).
func (t *tree) file(p string) ([]byte, error) {
	_, n, err := t.lookup(p, true)
	if err != nil {
		return nil, err
	}
	if n.typ != tar.TypeReg {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	return n.data, nil
}

// list returns the paths directly or indirectly below dir, unsorted.
func (t *tree) list(dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var out []string
	for p := range t.nodes {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// cleanAbs turns a tar member name ("./usr/bin/x") into a clean absolute
// path; path.Clean on a rooted path cannot climb above "/".
func cleanAbs(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("path %q contains NUL", name)
	}
	return path.Clean("/" + name), nil
}
