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
	verify := func(end int64, fp string) bool {
		if size < end {
			return false
		}
		ok, _ := VerifyHead(fh, end, fp)
		return ok
	}
	rec, err := m.kvRecord(ctx, id, verify)
	if err != nil {
		return err
	}
	src := path
	if rec != nil && rec.Source != path {
		src = rec.Source // renamed: a file keeps the subject it started under
	}
	m.mu.Lock()
	s := m.subjects[src]
	facts := startFacts{renamed: src != path, subjectOpen: s != nil, kv: rec, size: size,
		startAtEnd: f.initial && m.firstStart && m.opts.StartAt == "end"}
	m.mu.Unlock()
	var lc *streams.Chunk
	var lastSeq uint64
	if s == nil {
		if lc, lastSeq, err = m.lastChunk(ctx, src); err != nil {
			return err
		}
		if facts.lastChunk = lc != nil; facts.lastChunk {
			facts.lastEnd, facts.lastSeq = lc.File.End, lastSeq
			facts.lastIsThis = fromFile(lc, id, verify)
		}
	}
	plan := decideStart(facts)
	if plan.streamLost {
		m.met.rewound.Inc()
		m.log.Warn("file monitor: the stream went backwards (its end was lost: a damaged store); reading again from the stream's position, not the KV's",
			zap.String("path", path), zap.String("stream", m.d.Stream), zap.Uint64("kv_seq", rec.Seq), zap.Uint64("stream_seq", lastSeq),
			zap.Int64("kv_offset", rec.End), zap.Int64("offset", plan.offset))
	}
	if plan.settle {
		m.settle(f, size)
		return nil
	}
	var pre *file
	if s == nil {
		if plan.drainFirst {
			// the subject's last file is not at its path: rotated. Drain it first if found.
			m.rememberRotated(src, lc.File)
			pre = m.findRotated(path, lc.File)
		}
		s = m.newSubject(src, lastSeq)
	}
	return m.startAt(ctx, s, f, pre, fh, plan)
}

// kvRecord is the KV record of identity id if it is this file's: verify(end, fp) checks
// that the file's first bytes up to end have fingerprint fp. Another file's record (the
// inode was reused) is nil.
func (m *Monitor) kvRecord(ctx context.Context, id FileID, verify func(end int64, fp string) bool) (*streams.FilePosition, error) {
	rec, err := m.kvGet(ctx, id)
	if err != nil || rec == nil || verify(rec.End, rec.FP) {
		return rec, err
	}
	return nil, nil // inode reuse: another file had this inode
}

// fromFile reports whether chunk lc was read from the file of identity id whose first bytes
// verify checks (see kvRecord).
func fromFile(lc *streams.Chunk, id FileID, verify func(end int64, fp string) bool) bool {
	return lc != nil && (FileID{lc.File.Dev, lc.File.Ino}) == id && verify(lc.File.End, lc.File.Fingerprint)
}

// startAt places f, a held uncompressed file, on subject s at the plan's offset, after pre
// (see place). A position the KV lacks (chosen by start_at, or the stream's) is recorded
// first: the fallback for a restart.
func (m *Monitor) startAt(ctx context.Context, s *subject, f, pre *file, fh *os.File, plan startPlan) error {
	offset := plan.offset
	if plan.recordKV {
		head, _ := readHead(fh, offset)
		if err := m.untilNATS(ctx, func() error {
			return m.kvPut(ctx, f.id, streams.FilePosition{Source: s.source, FP: Fingerprint(head), End: offset})
		}); err != nil {
			if pre != nil {
				pre.tl.Close()
			}
			return err
		}
	}
	head, err := readHead(fh, offset)
	if err != nil {
		if pre != nil {
			pre.tl.Close()
		}
		return fmt.Errorf("read %s: %w", f.src, err)
	}
	keys := m.keysOf(fh, offset, head)
	m.place(s, f, pre, NewTailer(&m.cfg, s.source, fh, f.id, offset, head, time.Now()), keys)
	return nil
}

// startFacts is what decides where a held file starts reading: what its subject, the
// subject's last chunk and the KV record of its identity say (each verified against the
// file's first bytes before it counts).
type startFacts struct {
	renamed     bool                  // the KV record names another path as its subject
	subjectOpen bool                  // that subject is being read already in this run
	lastChunk   bool                  // the subject has a last chunk in LOGS (subject not open only)
	lastIsThis  bool                  // ... and it came from this very file
	lastEnd     int64                 // ... ending at this offset
	lastSeq     uint64                // ... stored at this sequence
	kv          *streams.FilePosition // the KV record of its identity; nil: none (or another file's)
	startAtEnd  bool                  // start_at: end applies (first start, found by the first scan)
	size        int64
}

// startPlan is where it starts.
type startPlan struct {
	settle     bool  // nothing to read: drained before, under a subject that went on since
	offset     int64 // where reading starts
	drainFirst bool  // the subject's last file is not this one: drain it first if found rotated
	recordKV   bool  // the KV has no record of this file: record the offset (start_at's, or the stream's)
	streamLost bool  // the KV saw chunks of the subject the stream no longer has: the stream's position wins
}

// decideStart is the start decision, DESIGN.md "Positions": the stream first, the KV when
// retention removed the subject's messages, start_at only for a subject never published.
func decideStart(f startFacts) startPlan {
	switch {
	case f.subjectOpen && f.renamed:
		return startPlan{settle: true} // renamed away from a subject that moved on: drained
	case f.subjectOpen:
		return startPlan{} // a new file took the path (rotation): after the current one, from 0
	case f.renamed && f.lastChunk && !f.lastIsThis:
		return startPlan{settle: true} // renamed, and its subject went on with another file
	}
	var p startPlan
	if f.kv != nil && f.lastChunk && f.kv.Seq > f.lastSeq {
		// The stream lost its end after the KV recorded it: what the KV counts as published
		// is gone. This file's lines after the subject's last chunk are read again (from its
		// end, or from 0 when the chunk is an earlier file's).
		p.streamLost = true
		if f.lastIsThis {
			p.offset = f.lastEnd
		}
		p.drainFirst = !f.lastIsThis
		return p
	}
	switch {
	case f.lastIsThis:
		p.offset = f.lastEnd
	case f.kv != nil:
		p.offset = f.kv.End // retention removed the subject's messages: the KV remembers
	case !f.lastChunk && f.startAtEnd:
		p.offset = f.size
	}
	if f.kv != nil {
		p.offset = max(p.offset, f.kv.End)
	}
	p.drainFirst = f.lastChunk && !f.lastIsThis
	p.recordKV = p.offset > 0 && f.kv == nil
	return p
}

// newSubject is the subject of source whose last message has sequence lastSeq.
func (m *Monitor) newSubject(source string, lastSeq uint64) *subject {
	subj := m.subjectOf(source)
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
