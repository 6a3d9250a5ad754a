package kubernetes

import (
	"bytes"
	"sync"
	"time"

	"github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// CRI frames a container log as the CRI runtime writes it, `<RFC3339Nano> <stdout|stderr>
// <P|F> <message>` per line, into a Kubernetes chunk's payload: one CRI line per entry, the
// P parts of a line joined with its F part (per stream: stdout and stderr interleave in one
// file), tag F; a part given out before its line ended keeps tag P and is marked continued.
//
// Positions: a chunk ends only where no entry of either stream is open (a cut), so the
// committed offset is always at the start of a line that starts an entry, and a restart
// (kill -9 included) reads on from there with nothing to remember: CRI is stateless, the
// partial state is never more than the bytes after the committed offset. Where no cut comes
// within max_chunk_bytes (both streams writing long lines at once), or the file is idle past
// partial_flush, or it ended (rotated, removed), the open entries are given out as parts
// marked continued: the decoder joins them with their stream's next part.
//
// A part longer than max_line_bytes is kept whole (the runtime bounds parts, 16 KiB by
// default); an entry grows by whole parts while it stays within max_line_bytes. A line
// that is not CRI is kept as it is, one entry (counted as malformed); one longer than a
// chunk is cut into raw parts of max_line_bytes.
//
// An open line also goes out as parts once the runtime's clock has moved on by
// PartialFlush since its first part (the newest line read is that much younger): the file
// is not idle while the other stream writes, and its lines must not wait behind a line that
// stalls (an application that wrote 16 KiB without a newline, then stopped).
type CRI struct {
	PartialFlush time.Duration // 0: only idleness, the chunk budget and the file's end give parts out
}

var _ filemon.Framer = CRI{}

// criPrefix is a payload line's bytes besides its timestamp and message: " stdout F " and "\n".
const criPrefix = len(" stdout F ") + 1

type criEntry struct {
	ts     []byte
	stream string
	size   int  // the message's bytes so far
	cont   bool // given out before its line ended: tag P, continued
	raw    bool // not a CRI line: kept as it is
	at     int  // write cursor while the payload is assembled
}

type criLine struct {
	msg []byte
	ent int
}

// framing is one Frame call's scratch: the lines and entries found so far and the last cut.
type framing struct {
	lines            []criLine
	ents             []criEntry
	open             [2]int // the entry each stream (stdout, stderr) is in; -1: none
	total            int    // payload bytes of every entry so far
	cutPos, cutLines int    // the last cut: buf offset, lines and entries before it
	cutEnts          int
	cutTotal         int
	lastTS           []byte // the timestamp of the newest CRI line read
}

// framings keeps the scratch of Frame calls: a chunk of short lines has tens of thousands
// of lines and entries, and readers frame one chunk after another.
var framings = sync.Pool{New: func() any { return new(framing) }}

// Frame implements filemon.Framer.
func (c CRI) Frame(buf []byte, flush bool, maxLine, maxChunk int, dst []byte) filemon.Framed {
	fr := framings.Get().(*framing)
	*fr = framing{lines: fr.lines[:0], ents: fr.ents[:0], open: [2]int{-1, -1}}
	defer func() {
		// no reference to the tailer's buffer stays in the pool
		clear(fr.lines[:cap(fr.lines)])
		clear(fr.ents[:cap(fr.ents)])
		fr.lastTS = nil
		framings.Put(fr)
	}()
	pos, full := fr.scan(buf, flush, maxLine, maxChunk)
	anyOpen := fr.open[0] >= 0 || fr.open[1] >= 0
	switch {
	case !anyOpen || flush || (full && fr.cutEnts == 0) || fr.stale(c.PartialFlush):
		// everything read so far, open entries as parts
		for _, k := range fr.open {
			if k >= 0 {
				fr.ents[k].cont = true
			}
		}
		fr.cutPos, fr.cutLines, fr.cutEnts, fr.cutTotal = pos, len(fr.lines), len(fr.ents), fr.total
	}
	if fr.cutEnts == 0 {
		return filemon.Framed{Data: dst}
	}
	return fr.write(dst)
}

// scan reads buf's lines until the payload would outgrow maxChunk; it returns where it
// stopped and whether it stopped for room (full).
func (fr *framing) scan(buf []byte, flush bool, maxLine, maxChunk int) (pos int, full bool) {
	for pos < len(buf) {
		rest := buf[pos:]
		nl := bytes.IndexByte(rest, '\n')
		var line []byte
		next := pos + nl + 1
		switch {
		case nl >= 0 && nl+1 <= maxChunk:
			line = rest[:nl]
		case pos > 0:
			return pos, true // a long line: on its own in the next chunk
		case nl < 0 && len(rest) < maxChunk && !flush:
			return pos, false // the rest of the line is not written yet
		default:
			// a line longer than a chunk, or an unterminated end: raw parts
			n := min(len(rest), maxLine, maxChunk-1)
			fr.addRaw(rest[:n], n < len(rest) || nl < 0 && !flush)
			return pos + n, n < len(rest)
		}
		l, err := streams.CutCRILine(line)
		if err != nil {
			if fr.total+len(line)+1 > maxChunk {
				return pos, true
			}
			fr.addRaw(line, false)
		} else if !fr.add(l, maxLine, maxChunk) {
			return pos, true
		}
		pos = next
		if fr.open[0] < 0 && fr.open[1] < 0 {
			fr.cutPos, fr.cutLines, fr.cutEnts, fr.cutTotal = pos, len(fr.lines), len(fr.ents), fr.total
		}
	}
	return pos, false
}

// stale reports whether an open entry began at least d before the newest line read, by
// the runtime's timestamps (not in file order across streams, by milliseconds: no matter).
func (fr *framing) stale(d time.Duration) bool {
	if d <= 0 || fr.lastTS == nil {
		return false
	}
	last, err := streams.ParseTimestamp(fr.lastTS)
	if err != nil {
		return false
	}
	for _, k := range fr.open {
		if k < 0 {
			continue
		}
		if first, err := streams.ParseTimestamp(fr.ents[k].ts); err == nil && last.Sub(first) >= d {
			return true
		}
	}
	return false
}

// addRaw adds a line that is not CRI as an entry of its own.
func (fr *framing) addRaw(b []byte, cont bool) {
	fr.ents = append(fr.ents, criEntry{raw: true, size: len(b), cont: cont})
	fr.lines = append(fr.lines, criLine{msg: b, ent: len(fr.ents) - 1})
	fr.total += len(b) + 1
}

// add adds a CRI line to its stream's open entry or a new one; false when it does not fit.
func (fr *framing) add(l streams.CRILine, maxLine, maxChunk int) bool {
	si := 0
	if l.Stream == streams.StreamStderr {
		si = 1
	}
	k := fr.open[si]
	grow := len(l.Msg)
	split := k >= 0 && fr.ents[k].size+len(l.Msg) > maxLine
	if k < 0 || split {
		grow += len(l.TS) + criPrefix
	}
	if fr.total+grow > maxChunk {
		return false
	}
	if split {
		fr.ents[k].cont = true // given out at max_line_bytes; the line goes on in a new entry
	}
	if k < 0 || split {
		fr.ents = append(fr.ents, criEntry{ts: l.TS, stream: l.Stream})
		k = len(fr.ents) - 1
	}
	fr.ents[k].size += len(l.Msg)
	fr.lastTS = l.TS
	fr.lines = append(fr.lines, criLine{msg: l.Msg, ent: k})
	fr.total += grow
	fr.open[si] = -1
	if l.Partial {
		fr.open[si] = k
	}
	return true
}

// write assembles the payload of the entries before the cut: each entry's line, its parts'
// messages in order, at the place of its first part.
func (fr *framing) write(dst []byte) filemon.Framed {
	out := filemon.Framed{Consumed: fr.cutPos, Entries: fr.cutEnts}
	base := len(dst)
	dst = append(dst, make([]byte, fr.cutTotal)...)
	at := base
	for i := range fr.ents[:fr.cutEnts] {
		e := &fr.ents[i]
		if e.cont {
			out.Continued = append(out.Continued, i)
		}
		if e.raw {
			e.at = at
			at += e.size + 1
			dst[at-1] = '\n'
			out.Malformed++
			continue
		}
		tag := " F "
		if e.cont {
			tag = " P "
		}
		at += copy(dst[at:], e.ts)
		at += copy(dst[at:], " ")
		at += copy(dst[at:], e.stream)
		at += copy(dst[at:], tag)
		e.at = at
		at += e.size + 1
		dst[at-1] = '\n'
	}
	for _, l := range fr.lines[:fr.cutLines] {
		e := &fr.ents[l.ent]
		e.at += copy(dst[e.at:], l.msg)
	}
	out.Data = dst[:at]
	return out
}
