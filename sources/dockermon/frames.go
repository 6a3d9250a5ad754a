// Package dockermon is the plain core of logcap's Docker container monitor: the log frame
// decoder, the per-container follower and the events-driven discovery loop. It starts no
// goroutine of its own: its functions block until their context is done, and the caller
// (modules/dockermon) decides what runs and under which name.
package dockermon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/logcap/logcap/streams"
)

// Stream names as Docker and logcap's headers spell them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// DockerPartialSize is where Docker's log copier splits a long line: parts of exactly this
// many bytes, all with the line's timestamp, only the last one ending in '\n'.
const DockerPartialSize = 16 * 1024

// maxFrame bounds one frame's payload: Docker writes one frame per log record (at most a
// 16 KiB part plus its timestamp), so a bigger length means a corrupt stream, and trusting
// it would let a peer make us allocate gigabytes.
const maxFrame = 1 << 20

// ErrTruncated is returned when a stream ends inside a frame header or payload. What was
// read of that frame is dropped: it was not published, so a resume reads it again.
var ErrTruncated = errors.New("truncated frame")

// ErrBroken marks an error after which the decoder cannot go on: the body failed to read
// (a daemon that shut down mid-stream ends a chunked body with "unexpected EOF"), or a frame
// header is corrupt and the frames are out of step. Every further Next returns it again, so
// the caller must end the stream and open a new one from its position.
var ErrBroken = errors.New("log stream broken")

// Record is one Docker log record: a line, or one part of a line that Docker split.
type Record struct {
	Stream string
	// TS is the record's timestamp; RawTS the bytes Docker sent for it (kept to print
	// lines exactly as `docker logs --timestamps` does).
	TS    time.Time
	RawTS []byte
	// Line is the content after "<timestamp> ", with its '\n' or "\r\n" when it has one.
	Line []byte
	// Partial: the record does not end in '\n' — a part of a split line, or the last bytes
	// a container wrote before it stopped.
	Partial bool
}

// Decoder reads the body of GET /containers/{id}/logs?timestamps=1: multiplexed frames
// (8-byte header: stream byte, three zero bytes, big-endian uint32 length) for containers
// without a TTY, the raw byte stream for containers with one. A Record's slices alias the
// decoder's buffer and are valid until the next call to Next.
type Decoder struct {
	r   io.Reader
	tty bool

	buf      []byte // unread bytes are buf[off:end]
	off, end int
	err      error // the reader's error, returned once buf is drained

	payload []byte // non-TTY: the rest of the current frame
	stream  string
	// partSize is DockerPartialSize; the fuzz target lowers it to keep inputs small.
	partSize int
}

// NewDecoder returns a decoder over r with a read buffer of bufSize bytes (at least 4 KiB);
// it grows for a frame bigger than that.
func NewDecoder(r io.Reader, tty bool, bufSize int) *Decoder {
	return &Decoder{r: r, tty: tty, buf: make([]byte, max(bufSize, 4<<10)), partSize: DockerPartialSize}
}

// Buffered reports how many bytes are read but not decoded: zero means the next Next may
// block on the network, which is when a follower publishes what it holds.
func (d *Decoder) Buffered() int { return d.end - d.off + len(d.payload) }

// fill reads until at least n unread bytes are buffered, or the reader fails. It moves the
// unread bytes to the front first, which invalidates slices handed out before.
func (d *Decoder) fill(n int) error {
	if d.end-d.off >= n {
		return nil
	}
	if d.off > 0 {
		d.end = copy(d.buf, d.buf[d.off:d.end])
		d.off = 0
	}
	if n > len(d.buf) {
		nb := make([]byte, max(n, 2*len(d.buf)))
		copy(nb, d.buf[:d.end])
		d.buf = nb
	}
	for d.end < n {
		if d.err == io.EOF {
			return io.EOF
		}
		if d.err != nil {
			return fmt.Errorf("read: %w: %w", ErrBroken, d.err)
		}
		m, err := d.r.Read(d.buf[d.end:])
		d.end += m
		if err != nil {
			d.err = err
		}
	}
	return nil
}

// Next returns the next record. At the end of the stream it returns io.EOF, or an error
// wrapping ErrTruncated when the stream ended inside a frame.
func (d *Decoder) Next() (Record, error) {
	if d.tty {
		return d.nextTTY()
	}
	for len(d.payload) == 0 {
		if err := d.fill(8); err != nil {
			if d.end == d.off {
				return Record{}, err
			}
			if err == io.EOF {
				return Record{}, fmt.Errorf("frame header of %d bytes: %w", d.end-d.off, ErrTruncated)
			}
			return Record{}, err
		}
		hdr := d.buf[d.off : d.off+8]
		switch hdr[0] {
		case 0, 1: // 0 is stdin, which Docker never sends on logs; count it as stdout
			d.stream = Stdout
		case 2:
			d.stream = Stderr
		default:
			return Record{}, fmt.Errorf("frame header % x: bad stream byte %d (a TTY container read as multiplexed?): %w", hdr, hdr[0], ErrBroken)
		}
		n := int(binary.BigEndian.Uint32(hdr[4:]))
		if n > maxFrame {
			return Record{}, fmt.Errorf("frame header % x: length %d over %d: %w", hdr, n, maxFrame, ErrBroken)
		}
		if err := d.fill(8 + n); err != nil {
			if err == io.EOF {
				return Record{}, fmt.Errorf("frame of %d bytes, %d read: %w", n, d.end-d.off-8, ErrTruncated)
			}
			return Record{}, err
		}
		d.payload = d.buf[d.off+8 : d.off+8+n]
		d.off += 8 + n
	}
	// One frame is one record in practice; a frame holding several lines is split on '\n'
	// so that no daemon's framing choice can glue two records together.
	ts, raw, rest, err := streams.CutDockerTimestamp(d.payload)
	if err != nil {
		d.payload = nil
		return Record{}, fmt.Errorf("%s frame: %w", d.stream, err)
	}
	end, partial := len(rest), true
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		end, partial = i+1, false
	}
	d.payload = rest[end:]
	return Record{Stream: d.stream, TS: ts, RawTS: raw, Line: rest[:end], Partial: partial}, nil
}

// nextTTY decodes the raw stream of a TTY container: "<ts> <line>\r\n" records back to
// back. A split line's part has no '\n' and the next part's timestamp follows it directly,
// so a part is recognised by its length (Docker splits at exactly DockerPartialSize bytes)
// followed by something that parses as a timestamp.
func (d *Decoder) nextTTY() (Record, error) {
	if err := d.fill(1); err != nil {
		return Record{}, err
	}
	// The timestamp ends at the first space.
	for {
		if i := bytes.IndexByte(d.buf[d.off:d.end], ' '); i >= 0 {
			break
		}
		if d.end-d.off > 64 {
			return Record{}, d.skipLine(fmt.Errorf("tty stream: no timestamp at record start %.40q", d.buf[d.off:d.end]))
		}
		if err := d.fill(d.end - d.off + 1); err != nil {
			if err == io.EOF {
				return Record{}, fmt.Errorf("tty record %.40q: %w", d.buf[d.off:d.end], ErrTruncated)
			}
			return Record{}, err
		}
	}
	ts, raw, _, err := streams.CutDockerTimestamp(d.buf[d.off:d.end])
	if err != nil {
		return Record{}, d.skipLine(fmt.Errorf("tty stream: %w", err))
	}
	head := len(raw) + 1
	// The record ends at '\n' within DockerPartialSize bytes of content; at the split point
	// when a timestamp follows it; or at EOF.
	scanned := 0
	for {
		content := d.buf[d.off+head : d.end]
		lim := min(len(content), d.partSize)
		if i := bytes.IndexByte(content[scanned:lim], '\n'); i >= 0 {
			return d.takeTTY(ts, head, scanned+i+1, false), nil
		}
		scanned = lim
		if len(content) >= d.partSize {
			if err := d.fill(head + d.partSize + streams.DockerTSLen + 1); err != nil && err != io.EOF {
				return Record{}, err
			}
			content = d.buf[d.off+head : d.end]
			if _, _, _, err := streams.CutDockerTimestamp(content[d.partSize:]); err == nil {
				return d.takeTTY(ts, head, d.partSize, true), nil
			}
			// Not a split made by Docker: the line goes on to its '\n'.
			if i := bytes.IndexByte(content[d.partSize:], '\n'); i >= 0 {
				return d.takeTTY(ts, head, d.partSize+i+1, false), nil
			}
			if len(content) >= maxFrame {
				return d.takeTTY(ts, head, len(content), true), nil
			}
		}
		if err := d.fill(d.end - d.off + 1); err != nil {
			if err == io.EOF {
				return d.takeTTY(ts, head, d.end-d.off-head, true), nil
			}
			return Record{}, err
		}
	}
}

func (d *Decoder) takeTTY(ts time.Time, head, n int, partial bool) Record {
	b := d.buf[d.off : d.off+head+n]
	d.off += head + n
	return Record{Stream: Stdout, TS: ts, RawTS: b[:head-1], Line: b[head:], Partial: partial}
}

// skipLine drops the bytes up to the next '\n' (or all that is buffered) so that one bad
// record does not end the stream, and returns err.
func (d *Decoder) skipLine(err error) error {
	if i := bytes.IndexByte(d.buf[d.off:d.end], '\n'); i >= 0 {
		d.off += i + 1
	} else {
		d.off = d.end
	}
	return err
}
