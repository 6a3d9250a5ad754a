package filemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/streams"
)

// ErrNotSameFile means the path now holds another file than the one a tailer follows.
var ErrNotSameFile = errors.New("path holds another file now")

// TailConfig is what every tailer of a source shares.
type TailConfig struct {
	Host              string
	MaxLineBytes      int
	MaxChunkBytes     int
	PartialFlush      time.Duration
	MultilineTimeout  time.Duration
	Multiline         *Multiline
	CloseRemovedAfter time.Duration
	// GzipSettle: a gzip file whose stream ended early is decompressed again once it has
	// grown and then not changed for this long (poll_interval).
	GzipSettle time.Duration
	// Flavor, when set, makes the files another kind of source (sources/kubernetes).
	Flavor *Flavor
}

// Tailer follows one file (one identity): it reads what is ready, frames it into entries
// and hands out chunks; the caller publishes a chunk and then commits it. It is a plain
// state machine: no goroutines, one caller at a time.
//
// States: open or closed (an idle file may be closed to bound fds and reopened at its
// position); reading; at EOF holding a partial last line until PartialFlush; truncated
// (size below our position, or the first bytes changed) → from 0; removed (no links left)
// → drained and closed by the monitor.
type Tailer struct {
	cfg    *TailConfig
	Source string // the subject's source: the path the identity was first seen at
	ID     FileID

	f      *os.File
	offset int64  // committed: published and acked up to here
	buf    []byte // read from offset on, not yet committed
	head   []byte // the file's first bytes (≤ FingerprintBytes), for the fingerprint
	gen    int    // truncations seen by this process: keeps msg ids unique after one

	size       int64
	removed    bool
	lastGrowth time.Time
	resetAfter bool // truncation seen with bytes still buffered: publish them, then go to 0

	pending *streams.Chunk
	out     []byte          // a framed chunk's payload (Flavor.Framer)
	subjSrc string          // the subject's source token
	k8s     *streams.PodRef // Flavor: the identity the chunks carry
	// notBefore is the earliest read time of the next chunk: the committed chunk's entry i
	// is at its read time + i ns (streams.Entries), and the next chunk's entries come after.
	notBefore time.Time
	lines     []Line
	entries   []Entry

	gz *gzState // a gzip file: offsets are in its decompressed stream

	Truncations int // total, for metrics
	SplitLines  int
	Malformed   int // lines a Framer kept as they were, not in its format
}

// NewTailer follows the open file f (identity id) from offset; head is the file's first
// min(offset, 1 KiB) bytes or more.
func NewTailer(cfg *TailConfig, source string, f *os.File, id FileID, offset int64, head []byte, now time.Time) *Tailer {
	if int64(len(head)) > offset && offset < FingerprintBytes {
		// keep only what is read: the fingerprint must cover published bytes only
		head = head[:max(offset, 0)]
	}
	return newTailer(cfg, source, f, id, offset, head, now)
}

// newTailer is the tailer of a plain or gzip file, named as the source's flavor says.
func newTailer(cfg *TailConfig, source string, f *os.File, id FileID, offset int64, head []byte, now time.Time) *Tailer {
	t := &Tailer{cfg: cfg, Source: source, ID: id, f: f, offset: offset, head: head, lastGrowth: now, subjSrc: source}
	if fl := cfg.Flavor; fl != nil {
		t.subjSrc, t.k8s = fl.Describe(source)
	}
	return t
}

// Offset is the committed position.
func (t *Tailer) Offset() int64 { return t.offset }

// Size is the file size at the last look.
func (t *Tailer) Size() int64 { return t.size }

// Removed reports whether the file had no links left at the last look.
func (t *Tailer) Removed() bool { return t.removed }

// IsOpen reports whether the tailer holds a file descriptor.
func (t *Tailer) IsOpen() bool { return t.f != nil }

// Idle is how long the file has not grown.
func (t *Tailer) Idle(now time.Time) time.Duration { return now.Sub(t.lastGrowth) }

// Drained reports whether everything read was committed and nothing more is in the file
// (for a gzip file: nothing more is decodable now).
func (t *Tailer) Drained() bool {
	if t.pending != nil || len(t.buf) > 0 {
		return false
	}
	if g := t.gz; g != nil {
		return g.zr == nil || g.done || g.err != nil
	}
	return t.offset >= t.size && !t.resetAfter
}

// Wants reports whether the tailer may have something to do for a file the last scan saw
// at size.
func (t *Tailer) Wants(size int64) bool {
	if t.gz != nil {
		return !t.Done() // reading, or waiting for an early end to grow or to stall for good
	}
	return size != t.size || t.f == nil && size != t.offset
}

// HasData reports whether the file holds any bytes now: through the descriptor while it is
// open (a rotated file's path leads elsewhere), else at path if that is still the file.
func (t *Tailer) HasData(path string) bool {
	var fi os.FileInfo
	var err error
	if t.f != nil {
		fi, err = t.f.Stat()
	} else if fi, err = os.Stat(path); err == nil {
		if id, _ := StatID(fi); id != t.ID {
			return false
		}
	}
	return err == nil && fi.Size() > 0
}

// Close closes the file; the position stays and Reopen continues there.
func (t *Tailer) Close() error {
	if t.f == nil {
		return nil
	}
	if t.gz != nil && t.gz.zr != nil {
		t.gz.zr.Close() // decompressed again from the start on reopen
		t.gz.zr = nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// Reopen opens path again after Close. It fails with ErrNotSameFile when path holds
// another file now.
func (t *Tailer) Reopen(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if id, _ := StatID(fi); id != t.ID {
		f.Close()
		return fmt.Errorf("reopen %s: %w", path, ErrNotSameFile)
	}
	t.f = f
	return nil
}

// Release drops a big read buffer of an idle file: 10,000 idle files must not hold 1 MiB each.
func (t *Tailer) Release() {
	if len(t.buf) == 0 {
		t.buf = nil
	} else if cap(t.buf) > 4*len(t.buf)+4096 {
		t.buf = append([]byte(nil), t.buf...)
	}
	if cap(t.lines) > 1024 {
		t.lines, t.entries = nil, nil
	}
	if t.pending == nil {
		t.out = nil // a framed payload, published: the next chunk gets a fresh one
	}
}

func (t *Tailer) reset() {
	t.offset, t.buf, t.head, t.resetAfter = 0, t.buf[:0], nil, false
	t.gen++
	t.Truncations++
}

// Next reads what is ready and returns the next chunk of complete entries, or nil when
// there is none yet (EOF, or only a held partial line). final flushes everything read
// (the file was rotated away or removed and is drained). Until Commit, Next returns the
// same chunk again.
func (t *Tailer) Next(now time.Time, final bool) (*streams.Chunk, error) {
	if t.pending != nil {
		return t.pending, nil
	}
	if t.f == nil {
		return nil, errors.New("tailer: file is closed")
	}
	fi, err := t.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	t.size, t.removed = fi.Size(), nlink(fi) == 0
	final = final || t.resetAfter
	if t.gz != nil {
		// immutable once complete: no truncation to look for; the stream's end is final
		t.readGzip(now)
		final = final || t.Done()
	} else {
		reset := t.resetAfter
		truncated, err := t.readPlain(now)
		if err != nil {
			return nil, err
		}
		// A final file is flushed (its partial last line too) only once read to its end:
		// a buffer filled to max_chunk_bytes ends mid-line and the rest of the line
		// follows (a rotated file 2.7 MB behind was published with a line cut in two).
		final = reset || truncated || final && t.offset+int64(len(t.buf)) >= t.size
	}
	if len(t.buf) == 0 {
		return nil, nil
	}
	return t.cut(now, final), nil
}

// readPlain reads what an uncompressed file has beyond what is held, up to MaxChunkBytes
// held. On a truncation (the file is shorter than what was read, or its first bytes
// changed) it starts over from 0, or, with bytes held, reports that they are published
// first (final) and the start over comes after them (resetAfter).
func (t *Tailer) readPlain(now time.Time) (final bool, err error) {
	readPos := t.offset + int64(len(t.buf))
	if !t.resetAfter {
		truncated := t.size < readPos
		if !truncated {
			if truncated, err = headChanged(t.f, t.head); err != nil {
				return false, fmt.Errorf("read head: %w", err)
			}
		}
		if truncated {
			if len(t.buf) == 0 {
				t.reset()
				readPos = 0
			} else {
				// publish what was read before the truncation, then start over
				t.resetAfter = true
				return true, nil
			}
		}
	}
	if t.resetAfter || t.size <= readPos || len(t.buf) >= t.cfg.MaxChunkBytes {
		return false, nil
	}
	want := min(t.size-readPos, int64(t.cfg.MaxChunkBytes))
	n := len(t.buf)
	if int64(cap(t.buf)-n) < want {
		nb := make([]byte, n, n+int(want))
		copy(nb, t.buf)
		t.buf = nb
	}
	m, err := t.f.ReadAt(t.buf[n:n+int(want)], readPos)
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("read at %d: %w", readPos, err)
	}
	t.buf = t.buf[:n+m]
	if m > 0 {
		t.lastGrowth = now
		if readPos < FingerprintBytes {
			t.head = append(t.head, t.buf[n:n+int(min(int64(m), FingerprintBytes-readPos))]...)
		}
	}
	return false, nil
}

// cut splits what is held into entries (lines, joined by the multiline rule) and returns
// the next chunk of them, pending until Commit; nil when no entry is complete yet.
func (t *Tailer) cut(now time.Time, final bool) *streams.Chunk {
	// A gzip stream that ended early is still being written: its last line is not complete
	// however long it waits. Only its end (final) flushes.
	idle := now.Sub(t.lastGrowth)
	flushPartial := final || t.gz == nil && idle >= t.cfg.PartialFlush
	if fl := t.cfg.Flavor; fl != nil && fl.Framer != nil {
		return t.frame(now, flushPartial)
	}
	var n int
	t.lines, n = SplitLines(t.buf, t.cfg.MaxLineBytes, flushPartial, t.lines[:0])
	flushGroup := final || (t.gz == nil && n == len(t.buf) && idle >= t.cfg.MultilineTimeout)
	t.entries, _ = t.cfg.Multiline.Join(t.buf[:n], t.lines, flushGroup, t.entries[:0])
	if len(t.entries) == 0 {
		return nil
	}
	c := t.newChunk(now)
	total, plain := 0, true
	var lens []int
	for i, e := range t.entries {
		if i > 0 && total+e.Len > t.cfg.MaxChunkBytes {
			break
		}
		total += e.Len
		lens = append(lens, e.Len)
		if e.Continued {
			c.Continued = append(c.Continued, i)
			t.SplitLines++
		}
		if e.Lines > 1 || e.Continued {
			plain = false
		}
	}
	c.Data, c.Lines = t.buf[:total], len(lens)
	if !plain {
		c.Entries = lens
	}
	end := t.offset + int64(total)
	c.File = &streams.FilePos{Dev: t.ID.Dev, Ino: t.ID.Ino, Fingerprint: Fingerprint(t.head[:min(int64(len(t.head)), end)]), Start: t.offset, End: end}
	t.pending = c
	return c
}

// Msg encodes a chunk of this tailer, with the msg id of its file's generation (see
// streams.Chunk.FileMsg).
func (t *Tailer) Msg(c *streams.Chunk) *nats.Msg { return c.FileMsg(t.gen) }

// Commit records that the pending chunk is stored.
func (t *Tailer) Commit() {
	c := t.pending
	if c == nil {
		return
	}
	t.pending = nil
	t.notBefore = c.ReadTime.Add(time.Duration(max(c.Lines, 1)))
	n := int(c.File.End - t.offset) // a framed payload is not the bytes read
	t.offset = c.File.End
	rest := copy(t.buf, t.buf[n:])
	t.buf = t.buf[:rest]
	if t.resetAfter && len(t.buf) == 0 {
		t.reset()
	}
}

// FP is the fingerprint at the committed offset.
func (t *Tailer) FP() string { return Fingerprint(t.head[:min(int64(len(t.head)), t.offset)]) }

// Behind is how many bytes of the file (at the last look) are not committed yet; for a
// gzip file, how many compressed bytes are not decompressed yet.
func (t *Tailer) Behind() int64 {
	if t.gz != nil {
		if t.Done() {
			return 0
		}
		return max(t.size-t.gz.consumed, 0)
	}
	return max(t.size-t.offset, 0)
}

// Buffered reports whether bytes are read but not committed (a held partial line).
func (t *Tailer) Buffered() bool { return len(t.buf) > 0 || t.pending != nil }
