package filemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Discover finds the files (globs, fsnotify on their directories, a stat poll every
// poll_interval as the safety net) and hands files with work to the readers. It blocks
// until ctx is done.
func (m *Monitor) Discover(ctx context.Context) error {
	if natsRetry.Until(ctx, 0, m.setup, func(_ int, err error) {
		m.log.Error("file monitor setup failed, retrying", zap.Error(err))
	}) != nil {
		return nil
	}
	var events <-chan fsnotify.Event
	var werrs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Warn("no fsnotify: polling only", zap.Duration("poll_interval", m.opts.PollInterval.D()), zap.Error(err))
	} else {
		defer w.Close()
		events, werrs = w.Events, w.Errors
	}
	m.firstScan(ctx, w)
	tick := time.NewTicker(m.opts.PollInterval.D())
	defer tick.Stop()
	rescan := time.NewTimer(time.Hour)
	rescan.Stop()
	defer rescan.Stop()
	pending := false
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if m.onEvent(ev) && !pending { // coalesce a burst of events into one rescan
				pending = true
				rescan.Reset(20 * time.Millisecond)
			}
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				m.log.Warn("fsnotify overflow: rescanning")
			} else {
				m.log.Warn("fsnotify", zap.Error(err))
			}
			m.scan(ctx, w)
		case <-rescan.C:
			pending = false
			m.scan(ctx, w)
		case <-tick.C:
			ticks++
			m.onTick(ctx, w, ticks)
		}
	}
}

// firstScan finds the files there at the start; Resolve opens Ready once it has placed
// what this scan found.
func (m *Monitor) firstScan(ctx context.Context, w *fsnotify.Watcher) {
	m.scan(ctx, w)
	m.mu.Lock()
	m.firstScanned = true
	select {
	case m.pendWake <- struct{}{}:
	default:
	}
	m.mu.Unlock()
}

// onEvent acts on one fsnotify event: a write wakes the file's reader, a new file is held
// at once (before a rename can move it away); it reports whether the directory changed,
// so that a rescan is due.
func (m *Monitor) onEvent(ev fsnotify.Event) bool {
	if ev.Has(fsnotify.Write) {
		m.mu.Lock()
		if f := m.byPath[ev.Name]; f != nil && f.subj != nil {
			m.enqueueLocked(f.subj)
		}
		m.mu.Unlock()
	}
	if ev.Has(fsnotify.Create) {
		m.holdPath(ev.Name)
	}
	return ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Chmod)
}

// onTick is the poll_interval tick. While fsnotify watches every directory, its events
// start the rescans and the reads; the full rescan (a glob and a stat per file: 4.5% of a
// core for 10,000 files at 1s) is then only the safety net for missed events, every
// fullScanEvery ticks. The cheap poll (partial lines, removed files, positions) runs on
// every tick.
func (m *Monitor) onTick(ctx context.Context, w *fsnotify.Watcher, ticks int) {
	m.mu.Lock()
	parked := m.parked
	m.mu.Unlock()
	if w == nil || !m.watchedAll || parked+m.holdFailed > 0 || ticks%fullScanEvery == 0 {
		m.scan(ctx, w)
	}
	m.poll()
}

// fullScanEvery is how many poll_interval ticks pass between full rescans while fsnotify
// watches every directory.
const fullScanEvery = 10

var compressed = []string{".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".Z"}

func (m *Monitor) excluded(p string) bool {
	if m.pruned(p) {
		return true // logcap's own store (CheckDataDir refuses globs aimed at it), /proc, …
	}
	for _, ex := range m.opts.Exclude {
		if ok, _ := doublestar.PathMatch(ex, p); ok {
			return true
		}
	}
	return slices.Contains(compressed, filepath.Ext(p)) && !m.isGzip(p)
}

// isGzip reports whether p is read as a gzip file.
func (m *Monitor) isGzip(p string) bool { return m.opts.IncludeCompressed && IsGzipName(p) }

// watchDirs returns the directories whose changes can add or remove matches, and whether
// their watches see every new match: not when a pattern's directory does not exist yet, nor
// when its directory part has wildcards other than ** (a new directory matching them appears
// in a directory nobody watches). Then only the full rescan finds new files.
func (m *Monitor) watchDirs() (map[string]bool, bool) {
	dirs := map[string]bool{}
	complete := true
	for _, p := range m.opts.Paths {
		base, _ := doublestar.SplitPattern(filepath.ToSlash(p))
		if strings.Contains(p, "**") {
			if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
				complete = false
			}
			filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
				switch {
				case err != nil || !d.IsDir():
					return nil
				case m.pruned(path):
					return filepath.SkipDir
				case len(dirs) >= maxWatchedDirs:
					complete = false // the full rescan covers the rest
					if !m.watchCapped {
						m.watchCapped = true
						m.log.Warn("file monitor: more directories than inotify watches allowed per source: the rest are found by the rescan (every poll_interval)",
							zap.Int("watched", maxWatchedDirs), zap.String("glob", p))
					}
					return filepath.SkipAll
				}
				dirs[path] = true
				return nil
			})
			continue
		}
		dp := filepath.Dir(p)
		if fi, err := os.Stat(dp); err != nil || !fi.IsDir() || strings.ContainsAny(dp, "*?[{") {
			complete = false
		}
		ms, _ := doublestar.FilepathGlob(dp)
		for _, d := range ms {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				dirs[d] = true
			}
		}
	}
	return dirs, complete
}

// maxWatchedDirs bounds the inotify watches of one source: `paths: ["/**"]` asked for
// 47,809 (a user has 8,192 to 65,536 in all, shared with every program).
const maxWatchedDirs = 4096

// pseudoFS are trees of kernel files, never logs: a ** glob does not descend into them.
var pseudoFS = map[string]bool{"/proc": true, "/sys": true, "/dev": true}

// scan matches the globs, holds new files, and notes where known files are now.
func (m *Monitor) scan(ctx context.Context, w *fsnotify.Watcher) {
	if w != nil {
		m.updateWatches(w)
	}
	paths, matched, capped := m.matchGlobs()
	m.mu.Lock()
	m.gen++
	gen := m.gen
	m.byPath = make(map[string]*file, len(paths))
	for p := range m.errs {
		if !matched[p] && !slices.Contains(m.opts.Paths, p) {
			delete(m.errs, p)
		}
	}
	m.mu.Unlock()
	failed := 0
	var heads []*file
	for i, p := range paths {
		if ctx.Err() != nil {
			return
		}
		if m.isGzip(p) && (i == 0 || !m.isGzip(paths[i-1])) {
			m.readHeads(heads)
		}
		fi, ok := m.statMatch(p)
		if !ok {
			continue
		}
		if known, head := m.seen(p, fi, gen); known {
			if head != nil {
				heads = append(heads, head)
			}
			continue
		}
		err := m.hold(p, gen)
		switch {
		case errors.Is(err, errMaxFiles):
			capped = true
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			failed++
			m.noteErr(p, err, zap.ErrorLevel)
		}
	}
	m.holdFailed = failed
	m.forgetGone(gen)
	m.mu.Lock()
	m.setCappedLocked(capped)
	m.mu.Unlock()
}

// updateWatches watches the directories the globs can match in, and forgets the others.
func (m *Monitor) updateWatches(w *fsnotify.Watcher) {
	dirs, complete := m.watchDirs()
	failed := map[string]bool{}
	for d := range dirs {
		if !m.watched[d] {
			if err := w.Add(d); err != nil {
				failed[d] = true
				m.log.Warn("cannot watch directory: polling covers it", zap.String("dir", d), zap.Error(err))
				continue
			}
		} else if m.watchFailed[d] {
			failed[d] = true
		}
	}
	m.watchFailed = failed
	m.watchedAll = complete && len(failed) == 0
	for d := range m.watched {
		if !dirs[d] {
			w.Remove(d)
		}
	}
	m.watched = dirs
}

// statMatch stats a matched path; false (noted once) for what is not a regular file.
func (m *Monitor) statMatch(p string) (os.FileInfo, bool) {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		if !errors.Is(err, fs.ErrNotExist) {
			m.noteErr(p, fmt.Errorf("file %s: %w", p, err), zap.WarnLevel)
		}
		return nil, false
	case fi.IsDir():
		m.noteErr(p, fmt.Errorf("file %s: is a directory, skipped", p), zap.DebugLevel)
		return nil, false
	case !fi.Mode().IsRegular():
		m.noteErr(p, fmt.Errorf("file %s: not a regular file (%s), skipped", p, fi.Mode().Type()), zap.WarnLevel)
		return nil, false
	}
	return fi, true
}

// seen notes where a known file is now (path, size, this scan). head is the file if its
// first 1 KiB is to be indexed before gzip copies are looked up. A finished file whose size
// changed is not known any more: it is looked at again (track checks its first bytes against
// its position). logrotate's delaycompress deletes app.log.1 and creates the new app.log with
// the same inode within milliseconds: without this, a glob matching both took the new file
// for the finished one and never read it.
func (m *Monitor) seen(p string, fi os.FileInfo, gen int) (known bool, head *file) {
	id, _ := StatID(fi)
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.files[id]
	if f != nil && f.subj == nil && !f.pending && fi.Size() != f.doneSize {
		delete(m.files, id)
		return false, nil
	}
	if f == nil {
		return false, nil
	}
	f.path, f.seenGen, f.sizeSeen = p, gen, fi.Size()
	m.byPath[p] = f
	m.unparkLocked(f)
	if c := f.content; c != nil && c.live && c.full == "" && fi.Size() >= FingerprintBytes {
		return true, f
	}
	return true, nil
}

// forgetGone forgets the finished files, and the held ones that could not be placed, that
// the scan gen did not see: they left the globs.
func (m *Monitor) forgetGone(gen int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.doneGen = gen
	for id, f := range m.files {
		if f.subj == nil && (!f.pending || f.parked) && f.seenGen != gen {
			if f.parked {
				f.parked = false
				m.parked--
			}
			m.releaseLocked(f)
			delete(m.files, id)
		}
	}
	for id := range m.gzWait {
		if m.files[id] == nil {
			delete(m.gzWait, id)
		}
	}
}

// readHeads adds to the content index the first 1 KiB of files being read that have grown
// to that size since they were placed (before a gzip copy of them is looked up).
func (m *Monitor) readHeads(files []*file) {
	for _, f := range files {
		m.mu.Lock()
		path := f.path
		m.mu.Unlock()
		fh, err := os.Open(path)
		if err != nil {
			continue
		}
		head, _ := readHead(fh, FingerprintBytes)
		fi, err := fh.Stat()
		fh.Close()
		if err != nil || len(head) < FingerprintBytes {
			continue
		}
		if id, _ := StatID(fi); id != f.id {
			continue
		}
		m.mu.Lock()
		if c := f.content; c != nil && c.live {
			m.addKeyLocked(c, Fingerprint(head), FingerprintBytes)
		}
		m.mu.Unlock()
	}
}

// noteErr logs an error about path once (again only when it changes); it reports whether
// it logged.
func (m *Monitor) noteErr(path string, err error, lvl zapcore.Level) bool {
	m.mu.Lock()
	prev, had := m.errs[path]
	m.errs[path] = err.Error()
	m.mu.Unlock()
	if had && prev == err.Error() {
		return false
	}
	if lvl >= zap.WarnLevel {
		m.met.errs.Inc()
	}
	m.log.Check(lvl, "file monitor: "+err.Error()).Write(zap.String("path", path))
	return true
}

func (m *Monitor) clearErr(path string) {
	m.mu.Lock()
	prev, had := m.errs[path]
	delete(m.errs, path)
	m.mu.Unlock()
	if had {
		m.log.Info("file monitor: file is readable again", zap.String("path", path), zap.String("previous_error", prev))
	}
}

// openStat opens path and stats the open file, not the path (it may be replaced meanwhile).
// O_NONBLOCK: a FIFO the globs match (found on its CREATE event, before any stat) opens at
// once instead of blocking discovery until a writer comes; reads of regular files ignore it.
func openStat(path string) (*os.File, os.FileInfo, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return fh, fi, nil
}
