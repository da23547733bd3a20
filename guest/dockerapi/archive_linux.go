package dockerapi

import (
	"archive/tar"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// pathStatHeader carries a container path's stat, as Docker sends it.
const pathStatHeader = "X-Docker-Container-Path-Stat"

// inContainer resolves a container path under root with every symlink but
// the last kept inside root: a symlink in the container never reaches the
// VM's own files.
func inContainer(root, p string) (string, error) {
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

// archivePath opens the container's filesystem and resolves the path
// parameter in it; release must be called when done.
func (s *Server) archivePath(r *http.Request) (root, full, p string, release func(), err error) {
	p = r.URL.Query().Get("path")
	if p == "" {
		return "", "", "", nil, fmt.Errorf("%w: path is required", errBadRequest)
	}
	root, release, err = s.eng.Filesystem(r.PathValue("id"))
	if err != nil {
		return "", "", "", nil, err
	}
	full, err = inContainer(root, p)
	if err != nil {
		release()
		return "", "", "", nil, err
	}
	return root, full, p, release, nil
}

func statHeader(w http.ResponseWriter, root, full, p string) (fs.FileInfo, error) {
	fi, err := os.Lstat(full)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &apiError{code: http.StatusNotFound, msg: "Could not find the file " + p + " in container"}
	}
	if err != nil {
		return nil, err
	}
	st := container.PathStat{Name: filepath.Base(full), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&os.ModeSymlink != 0 {
		if target, err := securejoin.SecureJoin(root, strings.TrimPrefix(full, root)); err == nil {
			st.LinkTarget = "/" + strings.TrimPrefix(strings.TrimPrefix(target, root), "/")
		}
	}
	b, _ := json.Marshal(st)
	w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(b))
	return fi, nil
}

// archiveHead answers HEAD /containers/{id}/archive: the path's stat.
func (s *Server) archiveHead(w http.ResponseWriter, r *http.Request) error {
	root, full, p, release, err := s.archivePath(r)
	if err != nil {
		return err
	}
	defer release()
	if _, err := statHeader(w, root, full, p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// archiveGet answers GET /containers/{id}/archive: a tar of the path (a
// directory with everything under it), named by its last element.
func (s *Server) archiveGet(w http.ResponseWriter, r *http.Request) error {
	root, full, p, release, err := s.archivePath(r)
	if err != nil {
		return err
	}
	defer release()
	fi, err := statHeader(w, root, full, p)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	tw := tar.NewWriter(w)
	base := filepath.Base(filepath.Clean("/" + p))
	if base == "/" {
		base = "."
	}
	add := func(path, name string, fi fs.FileInfo) error {
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	}
	if !fi.IsDir() {
		err = add(full, base, fi)
	} else {
		err = filepath.WalkDir(full, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(full, path)
			return add(path, filepath.Join(base, rel), info)
		})
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		s.log.Warn("archive", "path", p, "err", err)
		return errWritten
	}
	return nil
}

// archivePut answers PUT /containers/{id}/archive: the tar in the body is
// unpacked into the directory at path. Every entry is resolved inside the
// container's root; files belong to the container's root user unless
// copyUIDGID asks for the archive's owners.
func (s *Server) archivePut(w http.ResponseWriter, r *http.Request) error {
	root, full, p, release, err := s.archivePath(r)
	if err != nil {
		return err
	}
	defer release()
	fi, err := os.Stat(full)
	if errors.Is(err, os.ErrNotExist) {
		return &apiError{code: http.StatusNotFound, msg: "Could not find the file " + p + " in container"}
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: extraction point is not a directory", errBadRequest)
	}
	dest := strings.TrimPrefix(full, root)
	keepOwners := boolParam(r, "copyUIDGID")
	tr := tar.NewReader(r.Body)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading the archive: %w", errBadRequest, err)
		}
		if err := extractEntry(root, dest, hdr, tr, keepOwners); err != nil {
			return fmt.Errorf("%w: %s: %w", errBadRequest, hdr.Name, err)
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func extractEntry(root, dest string, hdr *tar.Header, r io.Reader, keepOwners bool) error {
	name := filepath.Clean("/" + hdr.Name)
	if name == "/" {
		return nil
	}
	target, err := inContainer(root, filepath.Join(dest, name))
	if err != nil {
		return err
	}
	uid, gid := 0, 0
	if keepOwners {
		uid, gid = hdr.Uid, hdr.Gid
	}
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
		src, err := inContainer(root, filepath.Join(dest, filepath.Clean("/"+hdr.Linkname)))
		if err != nil {
			return err
		}
		os.Remove(target)
		return os.Link(src, target)
	default:
		return nil // devices, fifos: not copied
	}
	if err := os.Lchown(target, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(target, mode); err != nil {
		return err
	}
	return os.Chtimes(target, time.Now(), hdr.ModTime)
}
