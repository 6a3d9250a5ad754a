package filemon

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Gzip files (include_compressed). A gzip file is read as its decompressed stream: its
// offsets, positions and fingerprint are those of the decompressed bytes, so a .gz copy of
// a file logcap read has that file's fingerprint. A gzip stream cannot be resumed after an
// unexpected end (a file still being written): it is decompressed again from the start and
// skipped to the position, once the file has grown and then settled for GzipSettle.

var (
	// ErrNotGzip: a file named *.gz does not start with the gzip magic 1f 8b.
	ErrNotGzip = errors.New("not gzip (no 1f 8b magic)")
	// ErrGzipPartial: the stream ends early: a file still being written, or truncated.
	ErrGzipPartial = errors.New("gzip stream ends early")
	errGzipChanged = errors.New("the decompressed content differs from what was read before")
)

// gzipSkipBudget bounds how much of a stream one Next call decompresses to skip to a
// position, so that a reader returns (and sees a stop) between slices of a big skip.
const gzipSkipBudget = 64 << 20

// IsGzipName reports whether path is named like a gzip file.
func IsGzipName(path string) bool { return filepath.Ext(path) == ".gz" }

// GzipHead decompresses the first min(FingerprintBytes, length) bytes of a gzip file.
// Errors: ErrNotGzip, ErrGzipPartial (fewer bytes decodable yet: wait), or a corrupt
// header or stream.
func GzipHead(f io.ReaderAt) ([]byte, error) {
	zr, err := openGzip(f, nil)
	if err != nil {
		return nil, err
	}
	head := make([]byte, FingerprintBytes)
	n := 0
	for n < len(head) {
		m, err := zr.Read(head[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, gzipErr(err)
		}
	}
	return head[:n], nil
}

// openGzip checks the magic and reads the gzip header of f.
func openGzip(f io.ReaderAt, count *int64) (*gzip.Reader, error) {
	var magic [2]byte
	if n, _ := f.ReadAt(magic[:], 0); n < 2 {
		return nil, ErrGzipPartial
	}
	if magic != [2]byte{0x1f, 0x8b} {
		return nil, ErrNotGzip
	}
	zr, err := gzip.NewReader(&countReader{r: io.NewSectionReader(f, 0, math.MaxInt64), n: count})
	if err != nil {
		return nil, gzipErr(err)
	}
	return zr, nil
}

// gzipErr sorts a decompression error: an early end is ErrGzipPartial, anything else is
// corrupt data.
func gzipErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ErrGzipPartial
	}
	return fmt.Errorf("corrupt gzip: %w", err)
}

type countReader struct {
	r io.Reader
	n *int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n != nil {
		*c.n += int64(n)
	}
	return n, err
}

// gzState is a tailer's decompression state.
type gzState struct {
	zr       *gzip.Reader // nil between attempts
	pos      int64        // decompressed bytes zr has delivered
	consumed int64        // compressed bytes read by zr (bytes_behind)
	stuckAt  int64        // compressed size at which the stream ended early; -1: it did not
	lastSize int64        // compressed size at the last look
	sizeAt   time.Time    // when lastSize was first seen
	done     bool         // the stream ended cleanly
	err      error        // given up: corrupt, changed, or truncated for too long
	// target: the position was set from elsewhere (a copy's original, start_at end) and
	// is not yet reached: a shorter stream ends there instead of being "changed".
	target bool
	toEnd  bool // the position is "wherever the stream ends now" (start_at: end)
}

// NewGzipTailer follows the gzip file f from decompressed offset offset; head is the
// stream's first min(length, 1 KiB) bytes (GzipHead). toEnd starts at the end of what is
// decodable now (start_at: end) instead.
func NewGzipTailer(cfg *TailConfig, source string, f *os.File, id FileID, offset int64, head []byte, toEnd bool, now time.Time) *Tailer {
	t := newTailer(cfg, source, f, id, offset, head, now)
	t.gz = &gzState{stuckAt: -1, lastSize: -1, target: offset > 0 || toEnd, toEnd: toEnd}
	if toEnd {
		t.offset = math.MaxInt64
	}
	return t
}

// Compressed reports whether the tailer reads a gzip stream.
func (t *Tailer) Compressed() bool { return t.gz != nil }

// Done reports whether a gzip stream is over: read to its clean end, or given up (Err).
func (t *Tailer) Done() bool { return t.gz != nil && (t.gz.done || t.gz.err != nil) }

// Err is why a gzip stream was given up (corrupt, changed, truncated for too long).
func (t *Tailer) Err() error {
	if t.gz == nil {
		return nil
	}
	return t.gz.err
}

// Busy reports whether a skip to the position is under way: call Next again at once.
func (t *Tailer) Busy() bool {
	return t.gz != nil && t.gz.zr != nil && t.gz.pos < t.offset+int64(len(t.buf))
}

// SkipTo moves the position of a gzip tailer that has read nothing yet forward to end
// (the end of the file it is a copy of).
func (t *Tailer) SkipTo(end int64) {
	if t.gz == nil || t.pending != nil || len(t.buf) > 0 || t.gz.zr != nil || end <= t.offset {
		return
	}
	t.offset, t.gz.target = end, true
}

// readGzip reads the next decompressed bytes into t.buf (at most MaxChunkBytes held),
// first skipping to the position. It sets done, err or stuckAt when the stream ends.
func (t *Tailer) readGzip(now time.Time) {
	g := t.gz
	if g.done || g.err != nil {
		return
	}
	if t.size != g.lastSize {
		g.lastSize, g.sizeAt = t.size, now
		if g.stuckAt >= 0 {
			t.lastGrowth = now
		}
	}
	if g.zr == nil && !t.gzipReopen(now) {
		return
	}
	if !t.gzipSkip() {
		return
	}
	g.target, g.toEnd = false, false
	t.gzipFill(now)
}

// gzipReopen opens the stream from its start. After an early end it does so only once the
// file has grown and then been quiet for GzipSettle; a file that has not grown for
// CloseRemovedAfter is given up as truncated. It reports whether the stream is open.
func (t *Tailer) gzipReopen(now time.Time) bool {
	g := t.gz
	if g.stuckAt >= 0 {
		switch {
		case t.size != g.stuckAt && now.Sub(g.sizeAt) >= t.cfg.GzipSettle:
			// grown, and quiet since: try again
		case t.size == g.stuckAt && now.Sub(t.lastGrowth) >= t.cfg.CloseRemovedAfter:
			g.err = fmt.Errorf("truncated: the stream ends early at compressed byte %d (decompressed offset %d) and the file has not grown for %s",
				g.stuckAt, t.offset+int64(len(t.buf)), t.cfg.CloseRemovedAfter)
			return false
		default:
			return false
		}
	}
	g.consumed = 0
	zr, err := openGzip(t.f, &g.consumed)
	if err != nil {
		t.gzipEnd(err) // already sorted
		return false
	}
	g.zr, g.pos, g.stuckAt = zr, 0, -1
	return true
}

// gzipSkip decompresses, and discards, the stream up to the read position (at most
// gzipSkipBudget a call: Busy). It reports whether the stream is there.
func (t *Tailer) gzipSkip() bool {
	g := t.gz
	readPos := t.offset + int64(len(t.buf))
	var scratch []byte
	if g.pos < readPos {
		scratch = make([]byte, 32<<10)
	}
	for budget := int64(gzipSkipBudget); g.pos < readPos; {
		if budget <= 0 {
			return false // Busy: the caller comes back at once
		}
		n := min(readPos-g.pos, int64(len(scratch)), budget)
		m, err := g.zr.Read(scratch[:n])
		if m == 0 && err == nil {
			return false // no progress: try again on the next call
		}
		if m > 0 {
			if herr := t.gzipSeen(g.pos, scratch[:m]); herr != nil {
				t.gzipEnd(herr)
				return false
			}
			g.pos += int64(m)
			budget -= int64(m)
		}
		if err != nil {
			err = readErr(err)
			switch {
			case g.target && len(t.buf) == 0 && (err == io.EOF || g.toEnd):
				// the stream ends before the position it was given (start_at end: wherever
				// it ends now): it ends here
				t.offset, g.target, g.toEnd = g.pos, false, false
			case err == io.EOF:
				err = errGzipChanged // shorter than what was read from it before
			}
			t.gzipEnd(err)
			return false
		}
	}
	return true
}

// gzipFill decompresses into t.buf until it holds MaxChunkBytes or the stream has no more
// for now.
func (t *Tailer) gzipFill(now time.Time) {
	g := t.gz
	want := t.cfg.MaxChunkBytes - len(t.buf)
	if want <= 0 {
		return
	}
	n := len(t.buf)
	if cap(t.buf)-n < want {
		nb := make([]byte, n, n+want)
		copy(nb, t.buf)
		t.buf = nb
	}
	for len(t.buf) < n+want {
		m, err := g.zr.Read(t.buf[len(t.buf) : n+want])
		if m == 0 && err == nil {
			return
		}
		if m > 0 {
			if herr := t.gzipSeen(g.pos, t.buf[len(t.buf):len(t.buf)+m]); herr != nil {
				t.gzipEnd(herr)
				return
			}
			t.buf = t.buf[:len(t.buf)+m]
			g.pos += int64(m)
			t.lastGrowth = now
		}
		if err != nil {
			t.gzipEnd(readErr(err))
			return
		}
	}
}

// readErr sorts an error of a read from the stream: io.EOF is its clean end.
func readErr(err error) error {
	if err == io.EOF {
		return err
	}
	return gzipErr(err)
}

// gzipEnd records why the stream stopped (err sorted by gzipErr or readErr): at its clean
// end (io.EOF), early (ErrGzipPartial: wait for the file to grow), or for good.
func (t *Tailer) gzipEnd(err error) {
	g := t.gz
	if g.zr != nil {
		g.zr.Close()
		g.zr = nil
	}
	switch {
	case err == io.EOF:
		g.done = true
	case errors.Is(err, ErrGzipPartial):
		g.stuckAt = t.size
	default:
		g.err = err
	}
}

// gzipSeen checks decompressed bytes b at stream position p against the head known (a
// stream decompressed again must be the same) and extends the head.
func (t *Tailer) gzipSeen(p int64, b []byte) error {
	if p >= FingerprintBytes {
		return nil
	}
	b = b[:min(int64(len(b)), FingerprintBytes-p)]
	if k := min(int64(len(t.head))-p, int64(len(b))); k > 0 {
		if !bytes.Equal(t.head[p:p+k], b[:k]) {
			return errGzipChanged
		}
		b, p = b[k:], p+k
	}
	if p == int64(len(t.head)) {
		t.head = append(t.head, b...)
	}
	return nil
}
