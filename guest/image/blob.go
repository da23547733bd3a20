package image

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
)

// blobWriter spools a blob to tmp/ while hashing it. commit verifies the
// digest and moves the file into blobs/; nothing unverified is ever visible
// there.
type blobWriter struct {
	s   *Store
	f   *os.File
	bw  *bufio.Writer
	h   hash.Hash
	n   int64
	err error
}

func (s *Store) newBlobWriter() (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "blob-")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &blobWriter{s: s, f: f, bw: bufio.NewWriterSize(f, 256<<10), h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.h.Write(p)
	n, err := w.bw.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("write blob: %w", err)
	}
	return n, w.err
}

// digest is the sha256 of what has been written so far.
func (w *blobWriter) digest() string { return sha256Digest(w.h.Sum(nil)) }

// commit checks the content against want (and wantSize when >= 0) and
// renames it into blobs/. It does not fsync: an operation makes all its new
// content durable with one syncContent before the index names any of it,
// and Open deletes whatever a crash left unreferenced, so content that was
// renamed but never synced cannot be used after a crash.
func (w *blobWriter) commit(want string, wantSize int64) error {
	defer w.abort()
	if w.err != nil {
		return w.err
	}
	if got := w.digest(); got != want {
		return fmt.Errorf("blob %s: content has digest %s", want, got)
	}
	if wantSize >= 0 && w.n != wantSize {
		return fmt.Errorf("blob %s: size %d, want %d", want, w.n, wantSize)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	w.s.hook("blob-written")
	if err := os.Rename(w.f.Name(), w.s.blobPath(want)); err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	w.s.hook("blob-renamed")
	return nil
}

// abort discards the spooled file unless commit moved it.
func (w *blobWriter) abort() {
	if w.f == nil {
		return
	}
	w.f.Close()
	os.Remove(w.f.Name())
	w.f = nil
}

// writeBlob stores b under its digest, which must equal want.
func (s *Store) writeBlob(b []byte, want string) error {
	if _, err := digestHex(want); err != nil {
		return err
	}
	if s.hasBlob(want) {
		return nil
	}
	w, err := s.newBlobWriter()
	if err != nil {
		return err
	}
	w.Write(b)
	return w.commit(want, int64(len(b)))
}

// readBlob returns a small blob (manifest or config) from the store.
func (s *Store) readBlob(d string) ([]byte, error) {
	if _, err := digestHex(d); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.blobPath(d))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// syncDir makes renames into dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// syncContent makes everything an operation wrote (blobs, unpacked
// layers, the renames that published them) durable before the index that
// names them is written. One syncfs(2) of the store's filesystem is much
// cheaper than an fsync per file and per directory.
func (s *Store) syncContent() error {
	return syncFS(s.root)
}
