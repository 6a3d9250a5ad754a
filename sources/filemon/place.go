package filemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/streams"
)

// track places f, a held file: which subject it belongs to and where to start reading it
// (DESIGN.md "Positions"). Placing needs NATS only for a subject not read yet and for the
// KV record of the file's identity.
func (m *Monitor) track(ctx context.Context, f *file) error {
	fh, err := m.heldOpen(f)
	if err != nil {
		return err
	}
	if f.gz {
		return m.trackGzip(ctx, f, fh)
	}
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.src, err)
	}
	id, path, size := f.id, f.src, fi.Size()
	rec, err := m.kvGet(ctx, id)
	if err != nil {
		return err
	}
	if rec != nil && size >= rec.End {
		if ok, _ := VerifyHead(fh, rec.End, rec.FP); !ok {
			rec = nil // inode reuse: another file had this inode
		}
	} else {
		rec = nil
	}
	src := path
	if rec != nil && rec.Source != path {
		src = rec.Source // renamed: a file keeps the subject it started under
	}
	m.mu.Lock()
	s := m.subjects[src]
	firstStart := f.initial && m.firstStart
	m.mu.Unlock()
	var offset int64
	var pre *file
	switch {
	case s != nil && src != path:
		m.settle(f, size) // renamed away from a subject that has moved on to a newer file: it was drained
		return nil
	case s != nil:
		offset = 0 // a new file took the path (rotation): it comes after the subject's current one
	default:
		lc, lastSeq, err := m.lastChunk(ctx, src)
		if err != nil {
			return err
		}
		matches := lc != nil && FileID{lc.File.Dev, lc.File.Ino} == id && size >= lc.File.End
		if matches {
			matches, _ = VerifyHead(fh, lc.File.End, lc.File.Fingerprint)
		}
		switch {
		case matches:
			offset = lc.File.End
		case src != path && lc != nil:
			m.settle(f, size) // renamed, and its subject went on with another file since
			return nil
		case rec != nil:
			offset = rec.End // retention removed the subject's messages: the KV remembers
		case lc == nil && firstStart && m.opts.StartAt == "end":
			offset = size
		}
		if rec != nil && rec.Source == src {
			offset = max(offset, rec.End)
		}
		if lc != nil && !matches {
			// the subject's last file is not at its path: rotated. Drain it first if found.
			m.rememberRotated(src, lc.File)
			pre = m.findRotated(path, lc.File)
		}
		s = m.newSubject(src, lastSeq)
		if offset > 0 && rec == nil {
			// a position chosen by start_at: record it so a restart does not read the file again
			head, _ := readHead(fh, offset)
			if err := m.untilNATS(ctx, func() error { return m.kvPut(ctx, id, posRecord{Source: src, FP: Fingerprint(head), End: offset}) }); err != nil {
				if pre != nil {
					pre.tl.Close()
				}
				return err
			}
		}
	}
	head, err := readHead(fh, offset)
	if err != nil {
		if pre != nil {
			pre.tl.Close()
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	keys := m.keysOf(fh, offset, head)
	m.place(s, f, pre, NewTailer(&m.cfg, src, fh, id, offset, head, time.Now()), keys)
	return nil
}

// newSubject is the subject of source whose last message has sequence lastSeq.
func (m *Monitor) newSubject(source string, lastSeq uint64) *subject {
	subj := streams.SourceSubject(streams.KindFile, m.d.Host, source)
	pub := streams.NewPublisher(m.d.JS, m.d.Stream, subj, lastSeq)
	pub.Gate = m.d.Gate
	return &subject{source: source, pub: pub}
}

// place puts f, a held file, on its subject s with tailer tl (which takes over its
// descriptor), after pre (the file the subject's last chunk came from, found rotated next to
// f's path) if that is not known yet.
func (m *Monitor) place(s *subject, f, pre *file, tl *Tailer, keys headKeys) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pre != nil {
		switch old := m.files[pre.id]; {
		case old != nil && !old.pending: // already known under its new name
			pre.tl.Close()
			pre = nil
		case old != nil:
			m.takeOverPendingLocked(old)
			fallthrough
		default:
			pre.subj = s
			pre.content = m.newContentLocked(s.source, pre.tl.Offset(), pre.keys)
			s.files = append(s.files, pre)
			m.files[pre.id] = pre
			m.open++
		}
	}
	f.fh, f.pending, f.subj, f.tl, f.keys = nil, false, s, tl, keys
	if !f.gz {
		f.content = m.newContentLocked(s.source, tl.Offset(), keys)
	}
	s.files = append(s.files, f)
	m.files[f.id] = f
	if f.seenGen == m.gen {
		m.byPath[f.path] = f
	}
	m.subjects[s.source] = s
	if m.open > m.opts.MaxOpenFiles && f.seenGen >= m.doneGen {
		tl.Close() // reopened at its path when read: max_open_files holds from the first scan on
		m.open--
	}
	m.met.open.Set(float64(m.open))
	m.enqueueLocked(s)
}

// findRotated looks next to path for the file a subject's last chunk came from (logrotate
// renames app.log to app.log.1, app.log-20240101, …) and returns it, open at that chunk's
// end, if it has more to read.
func (m *Monitor) findRotated(path string, pos *streams.FilePos) *file {
	dir, base := filepath.Split(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	ents, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	for _, e := range ents {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, stem) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if id, _ := StatID(fi); id != (FileID{pos.Dev, pos.Ino}) || fi.Size() < pos.End {
			continue
		}
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		if ok, _ := VerifyHead(fh, pos.End, pos.Fingerprint); !ok || fi.Size() == pos.End {
			fh.Close()
			return nil
		}
		head, _ := readHead(fh, pos.End)
		id := FileID{pos.Dev, pos.Ino}
		m.mu.Lock()
		gen := m.gen
		m.mu.Unlock()
		f := &file{id: id, path: p, src: path, seenGen: gen, sizeSeen: fi.Size(), keys: m.keysOf(fh, pos.End, head)}
		f.tl = NewTailer(&m.cfg, path, fh, id, pos.End, head, time.Now())
		m.log.Info("file monitor: draining rotated file first", zap.String("path", p), zap.String("subject_path", path), zap.Int64("offset", pos.End))
		return f
	}
	return nil
}
