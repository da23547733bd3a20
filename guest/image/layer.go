package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/vmbox/vmbox/guest/api"
)

// layerJob is one layer of an image being pulled or loaded.
type layerJob struct {
	blob      string // digest of the blob as transported
	size      int64  // blob size; -1 if unknown
	mediaType string
	diffID    string // from the image config: what the unpacked tar must hash to
	// open returns the blob's bytes when it is not in the store yet.
	open func() (io.ReadCloser, error)
}

// ensureLayer makes sure the layer's blob and unpacked directory are in the
// store, fetching at most once per process however many pulls want it. The
// caller has pinned the digests. It returns the uncompressed size and
// whether anything was downloaded.
func (s *Store) ensureLayer(ctx context.Context, job layerJob, rep *reporter) (int64, bool, error) {
	id := shortID(job.blob)
	for {
		s.mu.Lock()
		if f := s.inflight[job.diffID]; f != nil {
			s.mu.Unlock()
			rep.status(id, "Waiting")
			select {
			case <-f.done:
				continue
			case <-ctx.Done():
				return 0, false, ctx.Err()
			}
		}
		haveBlob, haveLayer := s.hasBlob(job.blob), s.hasLayer(job.diffID)
		if haveBlob && haveLayer {
			s.mu.Unlock()
			m, err := s.readLayerMeta(job.diffID)
			if err != nil {
				return 0, false, err
			}
			rep.status(id, "Already exists")
			return m.DiffSize, false, nil
		}
		f := &flight{done: make(chan struct{})}
		s.inflight[job.diffID] = f
		s.mu.Unlock()

		n, err := s.fetchLayer(ctx, job, haveBlob, haveLayer, rep)

		s.mu.Lock()
		delete(s.inflight, job.diffID)
		close(f.done)
		s.mu.Unlock()
		return n, err == nil && !haveBlob, err
	}
}

// fetchLayer streams the blob once: it is hashed and spooled into the blob
// store while being decompressed, hashed again (the diff ID) and unpacked.
func (s *Store) fetchLayer(ctx context.Context, job layerJob, haveBlob, haveLayer bool, rep *reporter) (int64, error) {
	id := shortID(job.blob)
	var (
		rc  io.ReadCloser
		err error
		bw  *blobWriter
	)
	if haveBlob {
		rc, err = os.Open(s.blobPath(job.blob))
	} else {
		rc, err = job.open()
	}
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", job.blob, err)
	}
	defer rc.Close()
	var src io.Reader = &ctxReader{ctx: ctx, r: rc}
	if !haveBlob {
		if bw, err = s.newBlobWriter(); err != nil {
			return 0, err
		}
		defer bw.abort()
		// Receiving, hashing and spooling the blob run in their own
		// goroutine, so they overlap with decompressing and unpacking.
		pr, pw := io.Pipe()
		done := make(chan struct{})
		download := io.TeeReader(&progressReader{r: src, id: id, total: job.size, rep: rep}, bw)
		go func() {
			defer close(done)
			_, err := io.CopyBuffer(pw, download, make([]byte, 128<<10))
			pw.CloseWithError(err)
		}()
		// Runs before bw.abort: the goroutine must be done with bw.
		defer func() {
			pr.CloseWithError(errors.New("layer fetch abandoned"))
			<-done
		}()
		src = pr
	}

	var tmp string
	if !haveLayer {
		if tmp, err = os.MkdirTemp(filepath.Join(s.root, tmpDir), "layer-"); err != nil {
			return 0, err
		}
		defer os.RemoveAll(tmp)
		if err := os.Mkdir(filepath.Join(tmp, layerFSDir), 0o755); err != nil {
			return 0, err
		}
	}
	unpackTo := ""
	if tmp != "" {
		unpackTo = filepath.Join(tmp, layerFSDir)
	}
	diffID, diffSize, err := unpack(src, unpackTo)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", job.blob, err)
	}
	if bw != nil && bw.digest() != job.blob {
		return 0, fmt.Errorf("layer %s: downloaded content has digest %s", job.blob, bw.digest())
	}
	if diffID != job.diffID {
		return 0, fmt.Errorf("layer %s: unpacked content has digest %s, the image config says %s", job.blob, diffID, job.diffID)
	}
	if bw != nil {
		if err := bw.commit(job.blob, job.size); err != nil {
			return 0, err
		}
		rep.status(id, "Download complete")
	}
	if haveLayer {
		m, err := s.readLayerMeta(job.diffID)
		if err != nil {
			return 0, err
		}
		rep.status(id, "Pull complete")
		return m.DiffSize, nil
	}
	rep.progress(id, "Extracting", diffSize, diffSize)
	meta, _ := json.Marshal(layerMeta{DiffID: diffID, DiffSize: diffSize})
	if err := os.WriteFile(filepath.Join(tmp, layerMetaFile), meta, 0o600); err != nil {
		return 0, err
	}
	s.hook("layer-unpacked")
	if err := s.publishLayer(tmp, diffID); err != nil {
		return 0, err
	}
	s.hook("layer-renamed")
	rep.status(id, "Pull complete")
	return diffSize, nil
}

// publishLayer renames an unpacked layer into layers/. If another operation
// got there first, its copy is as good as ours.
func (s *Store) publishLayer(tmp, diffID string) error {
	err := os.Rename(tmp, s.layerPath(diffID))
	if err == nil || errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
		return nil
	}
	return fmt.Errorf("store layer %s: %w", diffID, err)
}

// unpack decompresses a layer blob (gzip, zstd or plain tar, told apart by
// their magic numbers rather than by a media type a registry may get wrong),
// returns the digest and size of the uncompressed tar, and unpacks it into
// dir unless dir is empty. All of r is consumed.
func unpack(r io.Reader, dir string) (string, int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	dec, closeDec, err := decompressor(br)
	if err != nil {
		return "", 0, err
	}
	defer closeDec()
	h := &countingHash{h: sha256.New()}
	tr := bufio.NewReaderSize(io.TeeReader(dec, h), 64<<10)
	if dir != "" {
		if err := extractTar(dir, tr); err != nil {
			return "", 0, err
		}
	}
	// The diff ID covers the whole stream, including the tar's padding.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return "", 0, fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "", 0, err
	}
	return sha256Digest(h.h.Sum(nil)), h.n, nil
}

// compression names what a blob's first bytes say it is.
type compression int

const (
	compressionNone compression = iota
	compressionGzip
	compressionZstd
)

func sniffCompression(b []byte) compression {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return compressionGzip
	case len(b) >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd:
		return compressionZstd
	}
	return compressionNone
}

func decompressor(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch sniffCompression(magic) {
	case compressionGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case compressionZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progressReader reports "Downloading" as bytes arrive, about every 1% of
// the blob (at least 64 KiB apart) so a progress bar moves without flooding.
type progressReader struct {
	r        io.Reader
	id       string
	total    int64
	rep      *reporter
	cur      int64
	reported int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.cur += int64(n)
	step := max(p.total/100, 64<<10)
	if n > 0 && (p.cur-p.reported >= step || (p.total > 0 && p.cur == p.total)) {
		p.reported = p.cur
		p.rep.progress(p.id, "Downloading", p.cur, p.total)
	}
	return n, err
}

// reporter serialises progress callbacks: layers are fetched concurrently,
// and the callback need not be safe for concurrent use.
type reporter struct {
	mu sync.Mutex
	fn func(api.PullProgress)
}

func (r *reporter) send(p api.PullProgress) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(p)
}

func (r *reporter) status(id, status string) {
	r.send(api.PullProgress{ID: id, Status: status})
}

func (r *reporter) progress(id, status string, cur, total int64) {
	r.send(api.PullProgress{ID: id, Status: status, ProgressDetail: &api.ProgressDetail{Current: cur, Total: total}})
}
