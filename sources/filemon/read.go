package filemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// poll hands the readers every file whose size moved, that holds a partial line, that was
// rotated or removed; and updates bytes_behind.
func (m *Monitor) poll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	var behind int64
	for _, s := range m.subjects {
		for _, f := range s.files {
			behind += f.behind
		}
		if s.busy || s.queued || s.stopped || len(s.files) == 0 {
			continue
		}
		f := s.files[0]
		t := f.tl
		if f.after != nil {
			if !f.after.live {
				m.enqueueLocked(s) // the file it is a copy of is done: it can go on
			}
			continue
		}
		if len(s.files) > 1 || f.seenGen < m.doneGen || t.Wants(f.sizeSeen) || t.Buffered() || t.Removed() || f.kvDirty {
			m.enqueueLocked(s)
		}
	}
	m.met.behind.Set(float64(behind))
}

func (m *Monitor) enqueueLocked(s *subject) {
	if s.busy {
		s.again = true
		return
	}
	if s.queued {
		return
	}
	s.queued = true
	m.queue = append(m.queue, s)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Monitor) take(ctx context.Context) *subject {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 {
			s := m.queue[0]
			m.queue[0] = nil
			m.queue = m.queue[1:]
			s.queued, s.busy = false, true
			if len(m.queue) > 0 {
				select {
				case m.wake <- struct{}{}:
				default:
				}
			}
			m.mu.Unlock()
			return s
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		}
	}
}

// Read is one reader: it takes a file with work, publishes its next chunk (waiting for the
// ack: when JetStream is slow, reading stops), and moves on. It blocks until ctx is done.
func (m *Monitor) Read(ctx context.Context) error {
	select {
	case <-m.ready:
	case <-ctx.Done():
		return nil
	}
	for {
		s := m.take(ctx)
		if s == nil {
			return nil
		}
		more := m.service(ctx, s)
		m.mu.Lock()
		s.busy = false
		if len(s.files) > 0 {
			s.files[0].behind = s.files[0].tl.Behind()
		}
		if (more || s.again) && ctx.Err() == nil && len(s.files) > 0 {
			s.again = false
			m.enqueueLocked(s)
		}
		m.mu.Unlock()
	}
}

func (m *Monitor) setOpen(delta int) {
	m.mu.Lock()
	m.open += delta
	m.met.open.Set(float64(m.open))
	m.mu.Unlock()
}

// service moves one subject forward by at most one chunk. It reports whether there is
// more to do at once.
func (m *Monitor) service(ctx context.Context, s *subject) bool {
	m.mu.Lock()
	if len(s.files) == 0 || s.stopped {
		m.mu.Unlock()
		return false
	}
	f := s.files[0]
	if f.after != nil {
		if f.after.live {
			m.mu.Unlock()
			return false
		}
		f.tl.SkipTo(f.after.end)
		f.after = nil
	}
	var succ *file
	var succPath string
	if len(s.files) > 1 {
		succ, succPath = s.files[1], s.files[1].path
	}
	path, away := f.path, f.seenGen < m.doneGen
	m.mu.Unlock()
	defer m.bound(f, away)
	t := f.tl
	now := time.Now()
	if !t.IsOpen() {
		if open, more := m.reopen(s, f, path); !open {
			return more
		}
	}
	final := m.final(t, succ, succPath, away, now)
	c, err := t.Next(now, final)
	final = final || t.Done() // a gzip stream that ended in this call
	m.noteTruncations(f)
	if err != nil {
		m.noteErr(path, fmt.Errorf("read %s: %w", path, err), zap.ErrorLevel)
		return false
	}
	if c != nil {
		if !m.publish(ctx, s, f, c, path, now) {
			return false
		}
		if !t.Drained() || final {
			return true
		}
	}
	if !t.Drained() {
		return t.Busy() // a partial line or multiline entry is held; or a gzip skip goes on
	}
	if f.kvDirty && (final || now.Sub(f.kvAt) >= time.Second) {
		m.putPos(ctx, f, s)
	}
	if final {
		// Record the end before the next file of the subject is published: a restart must
		// find this file complete.
		if f.kvDirty {
			return false
		}
		if err := t.Err(); err != nil {
			m.gzipFailed(path, err, t.Offset())
		}
		m.finish(s, f, !t.Compressed())
		return true
	}
	t.Release()
	return false
}

// reopen opens f again at path after it was closed to stay under max_open_files. If it left
// its path meanwhile it is lost (counted, logged) and the subject goes on with its next
// file: more says whether the subject has work at once.
func (m *Monitor) reopen(s *subject, f *file, path string) (open, more bool) {
	t := f.tl
	if err := t.Reopen(path); err != nil {
		if errors.Is(err, ErrNotSameFile) || errors.Is(err, fs.ErrNotExist) {
			m.finish(s, f, false)
			m.noteLost(path, s.source, fmt.Sprintf("it left its path while closed to stay under max_open_files; what it got after offset %d is not read", t.Offset()))
			return false, true
		}
		m.noteErr(path, fmt.Errorf("reopen %s: %w", path, err), zap.ErrorLevel)
		return false, false
	}
	m.setOpen(1)
	return true, false
}

// final reports whether the file read by t gets nothing more: its writer moved on to the
// successor (succ, at succPath), or it was removed or rotated away (away) and is idle.
func (m *Monitor) final(t *Tailer, succ *file, succPath string, away bool, now time.Time) bool {
	switch {
	case t.Compressed():
		// a gzip file ends with its stream: a successor or an idle spell says nothing of it
		return t.Done() || (t.Removed() || away) && t.Idle(now) >= m.cfg.CloseRemovedAfter
	case succ != nil:
		// A writer that reopened its file writes to the successor only after it stopped
		// writing here: look at the successor BEFORE reading this file to its end.
		return succ.tl.HasData(succPath) || t.Idle(now) >= m.cfg.CloseRemovedAfter
	case t.Removed() || away:
		return t.Idle(now) >= m.cfg.CloseRemovedAfter
	}
	return false
}

// publish publishes chunk c of f, waiting for the ack, and commits it; false if it was not
// stored (a stop, a fenced subject, an error: logged).
func (m *Monitor) publish(ctx context.Context, s *subject, f *file, c *streams.Chunk, path string, now time.Time) bool {
	t := f.tl
	start := time.Now()
	if _, err := s.pub.Publish(ctx, t.Msg(c)); err != nil {
		if ctx.Err() != nil {
			return false
		}
		m.met.errs.Inc()
		if errors.Is(err, streams.ErrFenced) {
			m.log.Error("file monitor: another writer publishes this file: stopped reading it", zap.String("path", path), zap.Error(err))
			m.mu.Lock()
			s.stopped = true
			m.mu.Unlock()
			return false
		}
		m.log.Error("file monitor: publish failed", zap.String("path", path), zap.Error(err))
		return false
	}
	m.met.publish.Observe(time.Since(start).Seconds())
	t.Commit()
	m.mu.Lock()
	m.committedLocked(f.content, c.File.Fingerprint, c.File.End)
	m.mu.Unlock()
	m.noteTruncations(f)
	m.met.split.Add(float64(t.SplitLines - f.splits)) // counted once published
	f.splits = t.SplitLines
	if d := t.Malformed - f.malformed; d > 0 {
		m.met.malformed.Add(float64(d))
		f.malformed = t.Malformed
		m.log.Warn("file monitor: lines not in the container log format, published as they were", zap.String("path", path), zap.Int("lines", d))
	}
	m.met.lines.Add(float64(c.Lines))
	m.met.bytes.Add(float64(len(c.Data)))
	m.met.chunks.Inc()
	f.kvDirty = true
	if now.Sub(f.kvAt) >= time.Second {
		m.putPos(ctx, f, s)
	}
	return true
}

// noteTruncations counts the truncations the tailer found since the last look; each ends
// a generation of the file's content.
func (m *Monitor) noteTruncations(f *file) {
	d := f.tl.Truncations - f.truncs
	if d <= 0 {
		return
	}
	f.truncs = f.tl.Truncations
	m.met.truncations.Add(float64(d))
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := f.content; c != nil {
		m.retireLocked(c)
		f.content = m.newContentLocked(c.source, 0, headKeys{})
	}
}

// bound closes the file of a tailer that is not being read when more than max_open_files
// are open: a file waiting in the queue must not hold a descriptor either. Rotated-away and
// removed files keep theirs: their path no longer leads to them.
func (m *Monitor) bound(f *file, away bool) {
	t := f.tl
	if t == nil || !t.IsOpen() || away || t.Removed() {
		return
	}
	m.mu.Lock()
	over := m.open > m.opts.MaxOpenFiles
	m.mu.Unlock()
	if over {
		t.Close()
		m.setOpen(-1)
	}
}

// finish drops a drained file from its subject.
func (m *Monitor) finish(s *subject, f *file, rotated bool) {
	wasOpen, size := f.tl.IsOpen(), f.tl.Size()
	f.tl.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	if wasOpen {
		m.open--
		m.met.open.Set(float64(m.open))
	}
	if rotated {
		m.met.rotations.Inc()
	}
	s.files = slices.DeleteFunc(s.files, func(x *file) bool { return x == f })
	f.subj, f.tl, f.doneSize = nil, nil, size
	m.retireLocked(f.content)
	if f.seenGen < m.doneGen {
		delete(m.files, f.id)
	}
	if len(s.files) == 0 && m.subjects[s.source] == s {
		delete(m.subjects, s.source)
	}
}
