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

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/api/types/container"

	gcontainer "github.com/vmbox/vmbox/guest/container"
)

// pathStatHeader carries a container path's stat, as Docker sends it.
const pathStatHeader = "X-Docker-Container-Path-Stat"

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
	full, err = gcontainer.ResolveIn(root, p)
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
	if _, err := statHeader(w, root, full, p); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	tw := tar.NewWriter(w)
	base := filepath.Base(filepath.Clean("/" + p))
	if base == "/" {
		base = "."
	}
	err = gcontainer.WriteTree(tw, full, base)
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
	owner := rootOwner
	if boolParam(r, "copyUIDGID") {
		owner = entryOwner
	}
	tr := tar.NewReader(r.Body)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading the archive: %w", errBadRequest, err)
		}
		if err := gcontainer.ExtractEntry(root, dest, hdr, tr, owner); err != nil {
			return fmt.Errorf("%w: %s: %w", errBadRequest, hdr.Name, err)
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// rootOwner gives unpacked files to the container's root user (docker
// cp's default); entryOwner keeps the archive's owners.
func rootOwner(*tar.Header) (int, int) { return 0, 0 }

func entryOwner(hdr *tar.Header) (int, int) { return hdr.Uid, hdr.Gid }
