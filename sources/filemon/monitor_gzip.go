package filemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

var (
	// errGzipWait: a gzip file's first bytes are not decodable yet; the next tick looks again.
	errGzipWait = errors.New("gzip file not decodable yet")
	// errReported: the file was given up and the reason logged.
	errReported = errors.New("reported")
)

// trackGzip places a gzip file seen for the first time (include_compressed). It is
// published under its own path. Its position is, by its identity (device + inode), the
// further of its KV record and its last chunk; else, by its content, the position of the
// file it is a copy of (logrotate's compress): the generation whose fingerprint equals the
// fingerprint of its decompressed first bytes. A copy of a file still being read waits
// for that file's end. Else it is read from its beginning (or its end: start_at).
func (m *Monitor) trackGzip(ctx context.Context, f *file, fh *os.File) error {
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.src, err)
	}
	id, path, size := f.id, f.src, fi.Size()
	head, err := m.gzipHead(f, fh, size)
	if err != nil {
		return err
	}
	verify := func(end int64, fp string) bool {
		n := min(end, FingerprintBytes)
		return int64(len(head)) >= n && Fingerprint(head[:n]) == fp
	}
	rec, err := m.kvRecord(ctx, id, verify)
	if err != nil {
		return err
	}
	if rec != nil && rec.GzipDone && rec.GzipSize == size {
		m.settle(f, size) // read before, as far as it goes
		return nil
	}
	m.mu.Lock()
	s := m.subjects[path]
	firstStart := f.initial && m.firstStart
	m.mu.Unlock()
	var pos int64
	if s == nil {
		lc, lastSeq, err := m.lastChunk(ctx, path)
		if err != nil {
			return err
		}
		if fromFile(lc, id, verify) {
			pos = lc.File.End
		}
		s = m.newSubject(path, lastSeq)
	}
	if rec != nil {
		pos = max(pos, rec.End)
		if rec.Source != path { // renamed: its chunks so far are under its first path
			lc, _, err := m.lastChunk(ctx, rec.Source)
			if err != nil {
				return err
			}
			if fromFile(lc, id, verify) {
				pos = max(pos, lc.File.End)
			}
		}
	}
	var after *contentPos
	toEnd := false
	if pos == 0 {
		var from string
		if pos, after, from, err = m.copyPos(ctx, path, head); err != nil {
			return err
		}
		if from != "" {
			m.log.Info("file monitor: gzip file is a copy of a file read: continues from its position",
				zap.String("path", path), zap.String("copy_of", from), zap.Int64("offset", pos), zap.Bool("waits_for_its_end", after != nil))
		} else if firstStart && m.opts.StartAt == "end" {
			toEnd = true
		}
	}
	m.mu.Lock()
	f.after, f.kvDirty = after, true
	m.mu.Unlock()
	m.place(s, f, nil, NewGzipTailer(&m.cfg, path, fh, id, pos, head, toEnd, time.Now()), headKeys{})
	return nil
}

// gzipHead is the decompressed first bytes of f, a gzip file of size bytes. While they do
// not decode yet it returns errGzipWait (a file still being written, most likely) until
// the file has not grown for CloseRemovedAfter; then, as for a corrupt file, it settles
// the file, reports why and returns errReported.
func (m *Monitor) gzipHead(f *file, fh *os.File, size int64) ([]byte, error) {
	head, err := GzipHead(fh)
	if errors.Is(err, ErrGzipPartial) {
		m.mu.Lock()
		w, ok := m.gzWait[f.id]
		if !ok || w.size != size {
			w = gzWait{size: size, since: time.Now()}
		}
		m.gzWait[f.id] = w
		m.mu.Unlock()
		if time.Since(w.since) < m.cfg.CloseRemovedAfter {
			return nil, errGzipWait // still being written, most likely
		}
		err = fmt.Errorf("truncated: its %d bytes decode to fewer than %d and it has not grown for %s", size, FingerprintBytes, m.cfg.CloseRemovedAfter)
	}
	if err != nil {
		m.settle(f, size)
		m.gzipFailed(f.src, err, 0)
		return nil, errReported
	}
	return head, nil
}

// copyPos finds the position of the file a gzip file with these decompressed first bytes
// is a copy of, and the path it was read under ("" if none): first in the content index
// (a copy of a file still being read waits for its end: after), else from the last chunk of
// the path it was rotated from (app.log.1.gz: app.log.1, app.log), which the index may not
// hold when logcap was stopped in between and that file's KV record lags.
func (m *Monitor) copyPos(ctx context.Context, path string, head []byte) (pos int64, after *contentPos, from string, err error) {
	fp := Fingerprint(head)
	m.mu.Lock()
	if c := m.fps[fp]; c != nil {
		pos, from = c.end, c.source
		if c.live {
			after = c
		}
	}
	m.mu.Unlock()
	if after != nil {
		return pos, after, from, nil
	}
	sources := rotatedFrom(path)
	if from != "" && !slices.Contains(sources, from) {
		sources = append(sources, from)
	}
	for _, src := range sources {
		lc, _, err := m.lastChunk(ctx, src)
		if err != nil {
			return 0, nil, "", err
		}
		if lc == nil || lc.File.End <= pos {
			continue
		}
		if n := min(lc.File.End, FingerprintBytes); int64(len(head)) >= n && Fingerprint(head[:n]) == lc.File.Fingerprint {
			pos, from = lc.File.End, src
		}
	}
	return pos, nil, from, nil
}

// rotationSuffix is what logrotate appends to a rotated file's name: .1, or with dateext
// -20240101, -2024010112, -1700000000 (%s), -2024-01-01.
var rotationSuffix = regexp.MustCompile(`(\.[0-9]+|-[0-9]{8,10}|-[0-9]{4}-[0-9]{2}-[0-9]{2})$`)

// rotatedFrom returns the paths a rotated, compressed file was probably read under.
func rotatedFrom(path string) []string {
	base := strings.TrimSuffix(path, ".gz")
	out := []string{base}
	if orig := rotationSuffix.ReplaceAllString(base, ""); orig != base && orig != "" {
		out = append(out, orig)
	}
	return out
}

// gzipFailed reports once that a gzip file was given up after publishing its decompressed
// bytes up to at.
func (m *Monitor) gzipFailed(path string, err error, at int64) {
	lvl, msg := zap.ErrorLevel, fmt.Errorf("gzip %s: %w; given up at decompressed byte %d (lines before it are published)", path, err, at)
	if errors.Is(err, ErrNotGzip) {
		lvl, msg = zap.WarnLevel, fmt.Errorf("gzip %s: %w: ignored", path, err)
	}
	if m.noteErr(path, msg, lvl) {
		m.met.gzipErrs.Inc()
	}
}
