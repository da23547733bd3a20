package container

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// ResolveIn resolves a path of a container's file system under root with
// every symlink but the last kept inside root: a symlink in the container
// never reaches the VM's own files.
func ResolveIn(root, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	clean := filepath.Clean(p)
	if clean == "/" {
		return root, nil
	}
	dir, err := securejoin.SecureJoin(root, filepath.Dir(clean))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(clean)), nil
}

// Owner chooses the owner of a file unpacked from a tar entry.
type Owner func(hdr *tar.Header) (uid, gid int)

// ExtractEntry unpacks one tar entry into the directory dest of the file
// system at root (docker cp, a build context, ADD of an archive): the
// entry and its hard link's target are resolved inside root, missing
// parents are made, directories, regular files, symlinks and hard links
// are written with the entry's mode and time and owner's owners; other
// kinds (devices, fifos) are left out.
func ExtractEntry(root, dest string, hdr *tar.Header, r io.Reader, owner Owner) error {
	name := filepath.Clean("/" + hdr.Name)
	if name == "/" {
		return nil
	}
	target, err := ResolveIn(root, filepath.Join(dest, name))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	uid, gid := owner(hdr)
	mode := os.FileMode(hdr.Mode).Perm() | os.FileMode(hdr.Mode)&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, mode); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	case tar.TypeReg:
		if fi, err := os.Lstat(target); err == nil && !fi.Mode().IsRegular() {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		os.Remove(target)
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		return os.Lchown(target, uid, gid)
	case tar.TypeLink:
		src, err := ResolveIn(root, filepath.Join(dest, filepath.Clean("/"+hdr.Linkname)))
		if err != nil {
			return err
		}
		os.Remove(target)
		return os.Link(src, target)
	default:
		return nil
	}
	if err := os.Lchown(target, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(target, mode); err != nil {
		return err
	}
	return os.Chtimes(target, time.Now(), hdr.ModTime)
}

// WriteTree writes src to tw: a file or symlink as one entry named name,
// a directory as name/ and everything under it. An empty name writes a
// directory's contents alone, named from it (a layer of a directory).
// Symlinks are written as they are, never followed.
func WriteTree(tw *tar.Writer, src, name string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		entry := filepath.ToSlash(filepath.Join(name, rel))
		if rel == "." {
			if name == "" {
				return nil
			}
			entry = name
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return nil // sockets and the like are no part of a tree's files
		}
		hdr.Name, hdr.Uname, hdr.Gname = entry, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
}
