package vmimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/vmbox/vmbox/internal/cpio"
)

type fsType int

const (
	fsDir fsType = iota
	fsFile
	fsSymlink
	fsCharDev
)

// fsEntry is one object of the initramfs being assembled.
type fsEntry struct {
	typ          fsType
	perm         uint32
	data         []byte
	target       string
	major, minor uint32
}

// rootfs is the initramfs content, keyed by absolute path. It is written
// sorted by path, so the archive does not depend on the order the build
// added things; a parent always sorts before its children.
type rootfs map[string]*fsEntry

func (r rootfs) add(p string, e *fsEntry) error {
	p, err := cleanAbs(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return nil
	}
	if err := r.add(path.Dir(p), &fsEntry{typ: fsDir, perm: 0o755}); err != nil {
		return err
	}
	if old, ok := r[p]; ok {
		if old.typ == fsDir && e.typ == fsDir {
			// Explicit permissions win over implied parents.
			if e.perm != 0o755 {
				old.perm = e.perm
			}
			return nil
		}
		if old.typ == e.typ && old.perm == e.perm && old.target == e.target && bytes.Equal(old.data, e.data) {
			return nil
		}
		return fmt.Errorf("initramfs: %s added twice with different contents", p)
	}
	if e.typ != fsDir {
		// A parent that is a file or symlink cannot hold p.
		if parent, ok := r[path.Dir(p)]; ok && parent.typ != fsDir {
			return fmt.Errorf("initramfs: parent of %s is not a directory", p)
		}
	}
	r[p] = e
	return nil
}

func (r rootfs) dir(p string, perm uint32) error { return r.add(p, &fsEntry{typ: fsDir, perm: perm}) }
func (r rootfs) file(p string, perm uint32, data []byte) error {
	return r.add(p, &fsEntry{typ: fsFile, perm: perm, data: data})
}
func (r rootfs) symlink(p, target string) error {
	return r.add(p, &fsEntry{typ: fsSymlink, perm: 0o777, target: target})
}

// fromTree copies the object at p in t (a file or symlink, not followed).
func (r rootfs) fromTree(t *tree, p string) error {
	n, ok := t.nodes[p]
	if !ok {
		return fmt.Errorf("%s: not in the pinned packages", p)
	}
	switch n.typ {
	case tar.TypeSymlink:
		return r.symlink(p, n.target)
	case tar.TypeReg:
		return r.file(p, n.mode, n.data)
	}
	return fmt.Errorf("%s: cannot copy tar type %q", p, n.typ)
}

// write writes r as a newc archive.
func (r rootfs) write(w io.Writer) error {
	paths := make([]string, 0, len(r))
	for p := range r {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	cw := cpio.NewWriter(w)
	for _, p := range paths {
		e := r[p]
		name := strings.TrimPrefix(p, "/")
		var err error
		switch e.typ {
		case fsDir:
			err = cw.Dir(name, e.perm)
		case fsFile:
			err = cw.File(name, e.perm, e.data)
		case fsSymlink:
			err = cw.Symlink(name, e.target)
		case fsCharDev:
			err = cw.CharDev(name, e.perm, e.major, e.minor)
		}
		if err != nil {
			return err
		}
	}
	return cw.Close()
}
