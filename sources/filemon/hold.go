package filemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"go.uber.org/zap"
)

// Holding a file and placing it are two steps, on two goroutines.
//
// Discover holds a file the moment it sees it: it opens it and keeps the descriptor (within
// max_open_files), so a rotation cannot take the file's lines away, whatever NATS does.
// Resolve then places the held files, oldest discovery first: which subject a file belongs
// to and where to start reading it. Only placing needs NATS (the last chunk of a subject,
// the KV position of a known identity), so an outage stalls placing and publishing, never
// discovery. A logcap that looked positions up before opening lost every generation that
// was created and renamed out of the globs while NATS was away (3 outages of 8 s, a file
// renamed every second: 5,770 of 11,770 lines).

// errLost: a held file could not be kept (see lose); it was counted and logged.
var errLost = errors.New("file lost")

// lostReadyWindow is how long readiness reports a lost file.
const lostReadyWindow = 5 * time.Minute

// holdPath holds the file at path if the globs match it and it is not known yet: called on
// fsnotify's CREATE, so a file is open within microseconds of its creation rather than at
// the rescan 20 ms later.
func (m *Monitor) holdPath(path string) {
	if !m.matches(path) {
		return
	}
	m.mu.Lock()
	gen := m.gen
	m.mu.Unlock()
	m.hold(path, gen)
}

// matches reports whether the globs of the source match path and no exclude does.
func (m *Monitor) matches(path string) bool {
	for _, p := range m.opts.Paths {
		if ok, _ := doublestar.PathMatch(p, path); ok {
			return !m.excluded(path)
		}
	}
	return false
}

// hold opens path and queues it to be placed, unless its identity is known already (then it
// notes the path). It never waits for NATS.
func (m *Monitor) hold(path string, gen int) error {
	fh, fi, err := openStat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		fh.Close()
		return fmt.Errorf("file %s: not a regular file (%s), skipped", path, fi.Mode().Type())
	}
	id, _ := StatID(fi)
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.files[id]; f != nil && (f.pending || f.subj != nil || fi.Size() == f.doneSize) {
		fh.Close()
		f.path, f.seenGen, f.sizeSeen = path, gen, fi.Size()
		m.byPath[path] = f
		m.unparkLocked(f)
		return nil
	}
	if len(m.files) >= m.opts.MaxFiles {
		fh.Close()
		m.setCappedLocked(true)
		return errMaxFiles
	}
	f := &file{id: id, path: path, src: path, seenGen: gen, sizeSeen: fi.Size(), pending: true,
		initial: !m.firstScanned, gz: m.isGzip(path)}
	if m.open < m.opts.MaxOpenFiles {
		f.fh = fh
		m.open++
		m.met.open.Set(float64(m.open))
	} else {
		fh.Close() // reopened when placed, if it is still at its path
	}
	m.files[id], m.byPath[path] = f, f
	m.queuePendingLocked(f)
	return nil
}

// unparkLocked queues f again if it is a held file the resolver could not place yet.
func (m *Monitor) unparkLocked(f *file) {
	if f.parked {
		f.parked = false
		m.parked--
		m.queuePendingLocked(f)
	}
}

func (m *Monitor) queuePendingLocked(f *file) {
	m.pending = append(m.pending, f)
	select {
	case m.pendWake <- struct{}{}:
	default:
	}
}

// Resolve places the files Discover holds, in the order they were found, waiting for NATS
// where a position lives there. It blocks until ctx is done.
func (m *Monitor) Resolve(ctx context.Context) error {
	for {
		f := m.nextPending(ctx)
		if f == nil {
			return nil
		}
		m.resolve(ctx, f)
		m.mu.Lock()
		m.resolving = nil
		m.mu.Unlock()
	}
}

// nextPending returns the oldest held file, or nil once ctx is done. Once the first scan's
// files are placed it records the first start and opens Ready.
func (m *Monitor) nextPending(ctx context.Context) *file {
	for {
		m.mu.Lock()
		firstDone := m.firstScanned && !m.readyClosed && (len(m.pending) == 0 || !m.pending[0].initial)
		if !firstDone && len(m.pending) > 0 {
			f := m.pending[0]
			m.pending[0] = nil
			m.pending = m.pending[1:]
			m.resolving = f
			m.mu.Unlock()
			return f
		}
		m.mu.Unlock()
		if firstDone {
			m.recordFirstStart(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.pendWake:
		}
	}
}

// recordFirstStart notes in the KV that this source has started once (start_at applies to
// the files of the very first scan only) and opens Ready.
func (m *Monitor) recordFirstStart(ctx context.Context) {
	if m.firstStart {
		if _, err := m.kv.Put(ctx, m.markerKey(), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil && ctx.Err() == nil {
			m.log.Error("file monitor: cannot record the first start", zap.Error(err))
		}
	}
	m.mu.Lock()
	m.firstStart, m.readyClosed = false, true
	m.mu.Unlock()
	close(m.ready)
}

// resolve places f; a file that cannot be placed yet stays held and parked, and the next scan
// that sees it tries again.
func (m *Monitor) resolve(ctx context.Context, f *file) {
	m.mu.Lock()
	removed := m.files[f.id] != f // taken over meanwhile (drained first as a rotated file)
	m.mu.Unlock()
	if removed {
		return
	}
	err := m.track(ctx, f)
	switch {
	case err == nil:
		m.clearErr(f.src)
		return
	case ctx.Err() != nil, errors.Is(err, errLost):
		return
	case errors.Is(err, errGzipWait):
	case errors.Is(err, errReported):
		return
	default:
		m.noteErr(f.src, err, zap.ErrorLevel)
	}
	m.mu.Lock()
	if m.files[f.id] == f && f.pending && !f.parked {
		f.parked = true
		m.parked++
	}
	m.mu.Unlock()
}

// heldOpen returns the descriptor f was held with, or opens it again at its latest path
// (it was closed to stay under max_open_files) if the same file is still there.
func (m *Monitor) heldOpen(f *file) (*os.File, error) {
	m.mu.Lock()
	fh, path := f.fh, f.path
	m.mu.Unlock()
	if fh != nil {
		return fh, nil
	}
	fh, fi, err := openStat(path)
	if err == nil {
		if id, _ := StatID(fi); id == f.id {
			m.mu.Lock()
			f.fh = fh
			m.open++
			m.met.open.Set(float64(m.open))
			m.mu.Unlock()
			return fh, nil
		}
		fh.Close()
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		m.lose(f, path, "it left its path before it could be read, and its descriptor had been closed to stay under max_open_files")
		return nil, errLost
	}
	return nil, err
}

// release closes the descriptor f is held with, if any.
func (m *Monitor) release(f *file) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(f)
}

func (m *Monitor) releaseLocked(f *file) {
	if f.fh == nil {
		return
	}
	f.fh.Close()
	f.fh = nil
	m.open--
	m.met.open.Set(float64(m.open))
}

// settle records f, a held file with nothing to read as it is (read before, or renamed away
// from a subject that went on): it is looked at again if its size changes.
func (m *Monitor) settle(f *file, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(f)
	f.pending, f.doneSize = false, size
	if m.files[f.id] == f && f.seenGen == m.gen {
		m.byPath[f.path] = f
	}
}

// lose gives f, a held file, up: its unread lines cannot be reached any more.
func (m *Monitor) lose(f *file, path, why string) {
	m.mu.Lock()
	m.releaseLocked(f)
	if m.files[f.id] == f {
		delete(m.files, f.id)
	}
	if m.byPath[f.path] == f {
		delete(m.byPath, f.path)
	}
	m.mu.Unlock()
	m.noteLost(path, f.src, why)
}

// noteLost has readiness report for lostReadyWindow a file whose unread lines cannot be
// reached any more, logs it with the file's path, and counts it: in that order, so that
// whoever sees the counter move finds /readyz and the log already saying which file.
func (m *Monitor) noteLost(path, src, why string) {
	m.mu.Lock()
	m.lostFiles++
	m.lastLost, m.lostAt = path+": "+why, time.Now()
	m.mu.Unlock()
	m.log.Error("file monitor: file lost: lines it held were not read", zap.String("path", path), zap.String("source_path", src), zap.String("reason", why))
	m.met.errs.Inc()
	m.met.lost.Inc()
}

// NotReady is "" unless a file was lost within lostReadyWindow (then it says which) or the
// globs match more than max_files files.
func (m *Monitor) NotReady() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var why []string
	if m.capped {
		why = append(why, fmt.Sprintf("file source %s: the globs match more than max_files (%d) files: the others are not read", m.name, m.opts.MaxFiles))
	}
	if m.lostFiles > 0 && time.Since(m.lostAt) <= lostReadyWindow {
		why = append(why, fmt.Sprintf("file source %s: %d file(s) lost since start, last %s ago: %s",
			m.name, m.lostFiles, time.Since(m.lostAt).Round(time.Second), m.lastLost))
	}
	return strings.Join(why, "; ")
}

// takeOverPendingLocked drops old, a held file, from the queue: pre, the same file found
// rotated next to a subject's path as the file its last chunk came from, takes its place.
func (m *Monitor) takeOverPendingLocked(old *file) {
	m.releaseLocked(old)
	m.pending = slices.DeleteFunc(m.pending, func(x *file) bool { return x == old })
	if old.parked {
		old.parked = false
		m.parked--
	}
}
