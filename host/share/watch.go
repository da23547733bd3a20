package share

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/vmbox/vmbox/guest/api"
)

const (
	// maxWatchedDirs bounds the directories a Watcher watches.
	maxWatchedDirs = 4096
	// batchDelay is how long a Watcher gathers events after the first
	// before it delivers them.
	batchDelay = 50 * time.Millisecond
	// echoWindow is how long a change the guest made hides the host's
	// events of the same kind on the same path.
	echoWindow = 2 * time.Second
)

// Watcher reports the changes the host sees under a share, as batches of
// api.ShareEvent.
//
// Watching the whole folder would cost too much (a home directory; on
// macOS, kqueue holds a descriptor for every file of a watched
// directory), so a Watcher watches only the directories the guest has
// listed or looked up through the share's Server, which are the ones
// whose entries the guest may hold: at most maxWatchedDirs of them, the
// least recently used dropped first. A directory reached through a
// symlink is left to the lookup of its own path.
//
// Changes the guest made itself through the Server do not come back:
// the Server tells the Watcher what it is about to change, and for
// echoWindow the Watcher drops events of that kind on that path (so a
// host change of the same kind on the same path in that window is lost
// too). A write is told apart by its result instead: the Server records
// the size, modification time and mode that its last write to a file
// left, and a write or chmod event on the file is dropped while a write
// is under way or while the file still has those; a host edit right
// after a guest write changes the modification time (unless it lands in
// the same tick of the file system's clock with the same size and mode)
// and gets through. A write or chmod event of a file gone by the time
// its batch is delivered is dropped too: its remove event follows.
type Watcher struct {
	share   api.Share
	dir     string // share.HostPath, absolute
	realDir string // dir with symlinks resolved
	root    *os.Root
	fsw     *fsnotify.Watcher
	log     *slog.Logger
	maxDirs int
	closing sync.Once

	mu      sync.Mutex
	dirs    map[string]*list.Element // the watched directories, by SFTP path, in lru
	lru     list.List                // SFTP paths, the most recently used first
	echoes  map[echo]time.Time       // until when the guest's changes hide events
	writes  map[string]*written      // by SFTP path
	pruneAt int                      // prune echoes and writes when they hold this many
}

// echo is a kind of event the guest's change of a path causes.
type echo struct{ path, op string }

// written is what the guest's writes to a file left.
type written struct {
	busy  int // writes under way
	known bool
	size  int64
	mtime time.Time
	mode  fs.FileMode
	until time.Time
}

// NewWatcher makes a watcher of sh that watches nothing until its Server
// has the guest's lookups watched. Run it, or Close it.
func NewWatcher(sh api.Share, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(sh.HostPath)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", sh.HostPath, err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", sh.HostPath, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", sh.HostPath, err)
	}
	// Buffered, so that the host's events queue while a batch is being
	// delivered.
	fsw, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("watch %s: %w", sh.HostPath, err)
	}
	return &Watcher{
		share: sh, dir: dir, realDir: realDir, root: root, fsw: fsw, log: log, maxDirs: maxWatchedDirs,
		dirs: map[string]*list.Element{}, echoes: map[echo]time.Time{}, writes: map[string]*written{}, pruneAt: 1024,
	}, nil
}

// Run delivers the host's changes to notify, in batches made within
// batchDelay of their first event, one batch at a time, until ctx ends
// or the watcher is closed (then it returns nil). It closes the watcher.
func (w *Watcher) Run(ctx context.Context, notify func(context.Context, []api.ShareEvent)) error {
	defer w.Close()
	var b batch
	var deliver <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			w.note(&b, ev)
			if deliver == nil && len(b.events) > 0 {
				deliver = time.After(batchDelay)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			// Nothing to do on an overflow but say so: the share's events
			// carry no "rescan".
			w.log.Warn("watch share", "share", w.share.HostPath, "err", err)
		case <-deliver:
			deliver = nil
			if evs := w.drop(b.take()); len(evs) > 0 {
				notify(ctx, evs)
			}
		}
	}
}

// Close stops the watcher.
func (w *Watcher) Close() error {
	var err error
	w.closing.Do(func() { err = errors.Join(w.fsw.Close(), w.root.Close()) })
	return err
}

// note adds the events of ev to b. A directory removed or renamed is not
// watched any more: a watch would follow it to its new name.
func (w *Watcher) note(b *batch, ev fsnotify.Event) {
	p, ok := w.sftpPath(ev.Name)
	if !ok {
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(p)
	}
	for _, m := range [...]struct {
		op   fsnotify.Op
		name string
	}{
		{fsnotify.Create, api.ShareCreate},
		{fsnotify.Write, api.ShareWrite},
		{fsnotify.Chmod, api.ShareChmod},
		{fsnotify.Remove | fsnotify.Rename, api.ShareRemove}, // the new name comes as Create
	} {
		if ev.Op&m.op != 0 {
			b.add(api.ShareEvent{GuestPath: w.share.GuestPath, Path: p, Op: m.name})
		}
	}
}

// batch is the events seen since the last delivery: each change of a
// path once, where it last happened, so that a file created, removed and
// created again ends up created.
type batch struct {
	events []api.ShareEvent // Op "" for one that happened again later
	at     map[api.ShareEvent]int
}

func (b *batch) add(ev api.ShareEvent) {
	if b.at == nil {
		b.at = map[api.ShareEvent]int{}
	}
	if i, ok := b.at[ev]; ok {
		b.events[i].Op = ""
	}
	b.at[ev] = len(b.events)
	b.events = append(b.events, ev)
}

func (b *batch) take() []api.ShareEvent {
	evs := b.events
	*b = batch{}
	return evs
}

// drop leaves out of evs the ones the guest caused.
func (w *Watcher) drop(evs []api.ShareEvent) []api.ShareEvent {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := evs[:0]
	for _, ev := range evs {
		if ev.Op == "" {
			continue
		}
		if until, ok := w.echoes[echo{ev.Path, ev.Op}]; ok && now.Before(until) {
			continue
		}
		if (ev.Op == api.ShareWrite || ev.Op == api.ShareChmod) && w.wrote(ev.Path, now) {
			continue
		}
		kept = append(kept, ev)
	}
	w.prune(now)
	return kept
}

// wrote reports whether a write or chmod event of p is the guest's own,
// or moot: of a file gone since, whose remove event follows.
func (w *Watcher) wrote(p string, now time.Time) bool {
	wr := w.writes[p]
	if wr != nil && wr.busy > 0 {
		return true
	}
	fi, err := w.root.Lstat(rel(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true
	case err != nil || wr == nil || !wr.known || !now.Before(wr.until):
		return false
	}
	return fi.Size() == wr.size && fi.ModTime().Equal(wr.mtime) && fi.Mode() == wr.mode
}

// prune forgets what the guest changed longer than echoWindow ago.
func (w *Watcher) prune(now time.Time) {
	for e, until := range w.echoes {
		if !now.Before(until) {
			delete(w.echoes, e)
		}
	}
	for p, wr := range w.writes {
		if wr.busy == 0 && !now.Before(wr.until) {
			delete(w.writes, p)
		}
	}
	w.pruneAt = max(1024, 2*(len(w.echoes)+len(w.writes)))
}

// prunable prunes when the guest's changes have piled up, as they do
// when no events come to prune them.
func (w *Watcher) prunable() {
	if len(w.echoes)+len(w.writes) >= w.pruneAt {
		w.prune(time.Now())
	}
}

// expect says the guest is about to change p in ways that cause events of
// the kinds ops.
func (w *Watcher) expect(p string, ops ...string) {
	if w == nil {
		return
	}
	until := time.Now().Add(echoWindow)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range ops {
		w.echoes[echo{p, op}] = until
	}
	w.prunable()
}

// writing says the guest is about to write to p, or set its attributes;
// the function it returns says it is done, and records the file's state
// from stat (nil when the file could not be opened).
func (w *Watcher) writing(p string) func(stat func() (fs.FileInfo, error)) {
	if w == nil {
		return func(func() (fs.FileInfo, error)) {}
	}
	w.mu.Lock()
	wr := w.writes[p]
	if wr == nil {
		wr = &written{}
		w.writes[p] = wr
		w.prunable()
	}
	wr.busy++
	w.mu.Unlock()
	return func(stat func() (fs.FileInfo, error)) {
		w.mu.Lock()
		defer w.mu.Unlock()
		wr.busy--
		wr.until = time.Now().Add(echoWindow)
		// Under the lock, so that the last of concurrent writes to finish
		// records the state after all of them.
		if stat == nil {
			return
		}
		if fi, err := stat(); err == nil {
			wr.known, wr.size, wr.mtime, wr.mode = true, fi.Size(), fi.ModTime(), fi.Mode()
		}
	}
}

// visit watches directory p, which the guest has listed or looked up.
func (w *Watcher) visit(p string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.dirs[p]; ok {
		w.lru.MoveToFront(e)
		return
	}
	// A watch follows symlinks: one through a symlink would name its
	// events after the link, and could watch a directory outside the
	// share if a symlink were swapped in between this check and the Add
	// (which would report names there, but nothing of their contents).
	host := w.hostPath(p)
	if real, err := filepath.EvalSymlinks(host); err != nil || real != filepath.Join(w.realDir, filepath.FromSlash(rel(p))) {
		return
	}
	if err := w.fsw.Add(host); err != nil {
		if !errors.Is(err, fsnotify.ErrClosed) {
			w.log.Debug("watch share directory", "dir", host, "err", err)
		}
		return
	}
	w.dirs[p] = w.lru.PushFront(p)
	for w.lru.Len() > w.maxDirs {
		w.unwatch(w.lru.Back())
	}
}

// forget stops watching p and the directories under it.
func (w *Watcher) forget(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for q, e := range w.dirs {
		if p == "/" || q == p || strings.HasPrefix(q, p+"/") {
			w.unwatch(e)
		}
	}
}

func (w *Watcher) unwatch(e *list.Element) {
	p := w.lru.Remove(e).(string)
	delete(w.dirs, p)
	// This fails for a directory gone, whose watch went with it.
	w.fsw.Remove(w.hostPath(p))
}

// hostPath is the host's name for SFTP path p.
func (w *Watcher) hostPath(p string) string {
	return filepath.Join(w.dir, filepath.FromSlash(rel(p)))
}

// sftpPath is the SFTP path of the host's name, and false for a name
// outside the share.
func (w *Watcher) sftpPath(name string) (string, bool) {
	r, err := filepath.Rel(w.dir, name)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return path.Join("/", filepath.ToSlash(r)), true
}
