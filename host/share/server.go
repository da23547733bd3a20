// Package share serves host folders into the VM: for each api.Share the
// host process opens an sshproto.ChanShare channel to the agent and
// serves SFTP version 3 on it from the share's folder, which the agent
// mounts with FUSE. The package owns that server, which never touches
// anything outside the folder, and the Watcher that reports the host's
// own changes under the folder (api.ShareEvent) so that the agent can
// replay them for inotify watchers in the VM.
package share

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/vmbox/vmbox/guest/api"
)

// Server serves one share on SFTP sessions.
type Server struct {
	Share api.Share
	// Watcher, when not nil, is the watcher of the same share: the server
	// has it watch each directory the guest lists or looks up, and tells
	// it of the changes the guest makes so that they do not come back to
	// the guest as events.
	Watcher *Watcher
}

// Serve serves SFTP on rw, the share's channel, until the client ends the
// session or ctx ends (then it returns nil). It closes rw.
func (s *Server) Serve(ctx context.Context, rw io.ReadWriteCloser) error {
	defer rw.Close()
	if s.Watcher != nil && s.Watcher.share.HostPath != s.Share.HostPath {
		return fmt.Errorf("share %s: the watcher watches %s", s.Share.HostPath, s.Watcher.share.HostPath)
	}
	root, err := os.OpenRoot(s.Share.HostPath)
	if err != nil {
		return fmt.Errorf("share %s: %w", s.Share.HostPath, err)
	}
	defer root.Close()
	h := &handlers{root: root, share: s.Share, w: s.Watcher, escape: escapeSentinel(root)}
	rs := sftp.NewRequestServer(rw, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer stop()
	if err := rs.Serve(); err != nil && err != io.EOF && ctx.Err() == nil {
		return fmt.Errorf("share %s: %w", s.Share.HostPath, err)
	}
	return nil
}

// escapeSentinel is the error os.Root gives for a path that leads out of
// it (through "..", or a symlink to elsewhere): the os package does not
// export it, and the server has to tell it from other failures, to
// answer it as api.ShareEscapeError.
func escapeSentinel(root *os.Root) error {
	var pe *fs.PathError
	if _, err := root.Lstat(".."); errors.As(err, &pe) {
		if _, ok := pe.Err.(syscall.Errno); !ok {
			return pe.Err
		}
	}
	return nil
}

// handlers answer the SFTP requests of a session from the share's root.
// The request server has already made every path absolute and clean, so
// "/../x" arrives as "/x"; the root refuses symlinks that lead out of it.
type handlers struct {
	root   *os.Root
	share  api.Share
	w      *Watcher
	escape error
}

// rel is the root's name for p, an SFTP path.
func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// fail is err as the client should get it, for an operation op on p.
func (h *handlers) fail(op, p string, err error) error {
	if err != nil && h.escape != nil && errors.Is(err, h.escape) {
		err = api.ShareEscapeError(op, p)
	}
	return fail(err)
}

// readOnly refuses a change to a read-only share.
func (h *handlers) readOnly(op, p string) error {
	if !h.share.ReadOnly {
		return nil
	}
	return fail(&fs.PathError{Op: op, Path: p, Err: syscall.EROFS})
}

// Fileread opens a file for reading.
func (h *handlers) Fileread(r *sftp.Request) (io.ReaderAt, error) { return h.open(r) }

// Filewrite opens a file for writing (and perhaps creates it).
func (h *handlers) Filewrite(r *sftp.Request) (io.WriterAt, error) { return h.open(r) }

// OpenFile opens a file for reading and writing.
func (h *handlers) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) { return h.open(r) }

// open returns an interface, not a *file, so that none of the above
// returns a nil *file in a non-nil interface.
func (h *handlers) open(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	p, fl := r.Filepath, r.Pflags()
	write := fl.Write || fl.Append || fl.Creat || fl.Trunc
	flag := os.O_RDONLY
	switch {
	case write && fl.Read:
		flag = os.O_RDWR
	case write:
		flag = os.O_WRONLY
	}
	if write {
		if err := h.readOnly("open", p); err != nil {
			return nil, err
		}
	}
	// With O_APPEND, os.File refuses WriteAt: file.WriteAt writes at the
	// end instead, which is what the flag asks of the server.
	if fl.Append {
		flag |= os.O_APPEND
	}
	if fl.Trunc {
		flag |= os.O_TRUNC
	}
	perm := os.FileMode(0o644)
	if fl.Creat {
		flag |= os.O_CREATE
		if fl.Excl {
			flag |= os.O_EXCL
		}
		// The request server keeps an open's attributes but drops their
		// flags; four bytes of attributes can only be the permissions.
		if len(r.Attrs) == 4 {
			perm = os.FileMode(binary.BigEndian.Uint32(r.Attrs)) & os.ModePerm
		}
		h.w.expect(p, api.ShareCreate)
	}
	var done func(stat func() (fs.FileInfo, error))
	if fl.Trunc || (write && h.share.Tag != "") {
		done = h.w.writing(p)
	}
	f, err := h.root.OpenFile(rel(p), flag|openNonblock, perm)
	if err != nil {
		if done != nil {
			done(nil)
		}
		return nil, h.fail("open", p, err)
	}
	of := &file{f: f, w: h.w, path: p, append: fl.Append}
	switch {
	case done != nil && write && h.share.Tag != "":
		// The guest writes the contents through virtiofs, which this
		// server does not see: the file counts as the guest's own
		// writing until the guest closes it here.
		of.written = done
	case done != nil:
		done(f.Stat)
	}
	return of, nil
}

// file is an open file of the share.
type file struct {
	f      *os.File
	w      *Watcher
	path   string // in the share
	append bool
	// written, when set, ends the guest's writing of the file at Close.
	written func(stat func() (fs.FileInfo, error))
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(b, off)
	if err != nil && err != io.EOF { // the request server wants io.EOF itself
		err = fail(err)
	}
	return n, err
}

func (f *file) WriteAt(b []byte, off int64) (n int, err error) {
	done := f.w.writing(f.path)
	defer done(f.f.Stat)
	if f.append {
		n, err = f.f.Write(b)
	} else {
		n, err = f.f.WriteAt(b, off)
	}
	return n, fail(err)
}

func (f *file) Close() error {
	if f.written != nil {
		f.written(f.f.Stat)
	}
	return fail(f.f.Close())
}

// Filecmd makes the changes other than writes.
func (h *handlers) Filecmd(r *sftp.Request) error {
	p, op := r.Filepath, strings.ToLower(r.Method)
	if r.Method == "Symlink" {
		// The request server gives the link's path in Target, and its
		// target, as the client sent it, in Filepath.
		p = r.Target
	}
	if err := h.readOnly(op, p); err != nil {
		return err
	}
	var err error
	switch r.Method {
	case "Setstat":
		err = h.setstat(r)
	case "Rename":
		err = h.rename(p, r.Target)
	case "Rmdir":
		err = h.remove(p, true)
	case "Remove":
		err = h.remove(p, false)
	case "Mkdir":
		// pkg/sftp's request server (v1.13.12) drops a mkdir's
		// attributes, so the default is what a directory gets there.
		perm := os.FileMode(0o755)
		if r.AttrFlags().Permissions {
			perm = r.Attributes().FileMode().Perm()
		}
		h.w.expect(p, api.ShareCreate)
		err = h.root.Mkdir(rel(p), perm)
	case "Link":
		h.w.expect(r.Target, api.ShareCreate)
		h.w.expect(p, api.ShareChmod) // its link count
		err = h.root.Link(rel(p), rel(r.Target))
	case "Symlink":
		h.w.expect(p, api.ShareCreate)
		err = h.root.Symlink(r.Filepath, rel(p))
	default:
		err = fmt.Errorf("%s %s: %w", op, p, syscall.ENOSYS)
	}
	return h.fail(op, p, err)
}

// PosixRename renames, replacing what the new name names: what Rename
// does too, as the client of a file system wants.
func (h *handlers) PosixRename(r *sftp.Request) error {
	if err := h.readOnly("rename", r.Filepath); err != nil {
		return err
	}
	return h.fail("rename", r.Filepath, h.rename(r.Filepath, r.Target))
}

func (h *handlers) rename(from, to string) error {
	h.w.expect(from, api.ShareRemove)
	h.w.expect(to, api.ShareCreate, api.ShareChmod)
	err := h.root.Rename(rel(from), rel(to))
	if !errors.Is(err, syscall.EEXIST) {
		return err
	}
	// os.Root refuses to rename onto a directory, where rename(2) replaces
	// an empty directory with a directory.
	fi, ferr := h.root.Lstat(rel(from))
	ti, terr := h.root.Lstat(rel(to))
	switch {
	case ferr != nil || terr != nil || !ti.IsDir():
		return err
	case !fi.IsDir():
		return &fs.PathError{Op: "rename", Path: to, Err: syscall.EISDIR}
	}
	if err := h.root.Remove(rel(to)); err != nil {
		return err
	}
	return h.root.Rename(rel(from), rel(to))
}

// remove removes a directory (rmdir) or anything else (unlink): os.Root
// would remove either.
func (h *handlers) remove(p string, dir bool) error {
	fi, err := h.root.Lstat(rel(p))
	switch {
	case err != nil:
		return err
	case dir && !fi.IsDir():
		return &fs.PathError{Op: "rmdir", Path: p, Err: syscall.ENOTDIR}
	case !dir && fi.IsDir():
		return &fs.PathError{Op: "remove", Path: p, Err: syscall.EISDIR}
	}
	h.w.expect(p, api.ShareRemove)
	return h.root.Remove(rel(p))
}

// setstat sets what the request's attributes hold, the size first, as a
// truncation moves the modification time; it accepts owners and sets
// none: containers run as root, whose chown must not fail on a share,
// and the host's user could not give a file away anyway.
func (h *handlers) setstat(r *sftp.Request) error {
	p, flags, attrs := r.Filepath, r.AttrFlags(), r.Attributes()
	// As a write: what it leaves tells its events from the host's.
	done := h.w.writing(p)
	defer done(func() (fs.FileInfo, error) { return h.root.Lstat(rel(p)) })
	if flags.Size {
		if err := h.truncate(p, int64(attrs.Size)); err != nil {
			return err
		}
	}
	if flags.Permissions {
		mode := attrs.FileMode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		if err := h.root.Chmod(rel(p), mode); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := h.root.Chtimes(rel(p), attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// truncate sets p's size; os.Root has no Truncate.
func (h *handlers) truncate(p string, size int64) error {
	f, err := h.root.OpenFile(rel(p), os.O_WRONLY|openNonblock, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Truncate(size)
}

// StatVFS describes the file system of the share's folder.
func (h *handlers) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	st, err := statVFS(h.root)
	if err != nil {
		return nil, h.fail("statvfs", r.Filepath, err)
	}
	if h.share.ReadOnly {
		st.Flag |= stRdonly
	}
	return st, nil
}

// Filelist answers List (the whole directory) and Stat (which follows
// symlinks, within the share).
func (h *handlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := r.Filepath
	switch r.Method {
	case "List":
		l, err := h.list(p)
		if err != nil {
			return nil, h.fail("list", p, err)
		}
		return l, nil
	case "Stat":
		fi, err := h.root.Stat(rel(p))
		if err != nil {
			return nil, h.fail("stat", p, err)
		}
		if fi.IsDir() {
			h.w.visit(p)
		}
		return listing{fi}, nil
	}
	return nil, fail(fmt.Errorf("%s %s: %w", strings.ToLower(r.Method), p, syscall.ENOSYS))
}

// Lstat describes an entry itself.
func (h *handlers) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.root.Lstat(rel(r.Filepath))
	if err != nil {
		return nil, h.fail("lstat", r.Filepath, err)
	}
	if fi.IsDir() {
		h.w.visit(r.Filepath)
	}
	return listing{fi}, nil
}

// Readlink is a symlink's target as it was stored.
func (h *handlers) Readlink(p string) (string, error) {
	t, err := h.root.Readlink(rel(p))
	return t, h.fail("readlink", p, err)
}

// list describes the entries of directory p as Lstat would. It starts to
// watch the directory before it reads it, so that no change in between
// goes unreported.
func (h *handlers) list(p string) (listing, error) {
	// os.Root.OpenRoot fails on a file with an error that has no errno.
	if fi, err := h.root.Stat(rel(p)); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, &fs.PathError{Op: "opendir", Path: p, Err: syscall.ENOTDIR}
	}
	h.w.visit(p)
	// Entries are looked up in a root of the directory itself: one
	// fstatat each, which cannot be led elsewhere by a renamed parent.
	dir, err := h.root.OpenRoot(rel(p))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	d, err := dir.Open(".")
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	l := make(listing, 0, len(names))
	for _, name := range names {
		fi, err := dir.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) { // gone since
			continue
		}
		if err != nil {
			return nil, err
		}
		l = append(l, fi)
	}
	return l, nil
}

// listing is a directory's entries, or a single file's.
type listing []os.FileInfo

func (l listing) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}
