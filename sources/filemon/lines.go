package filemon

import (
	"bytes"
	"regexp"

	"github.com/logcap/logcap/streams"
)

// Line is one line of a file as the splitter found it.
type Line struct {
	// Len is the line's length in bytes, its '\n' included when it has one.
	Len int
	// Continued: the line was longer than the limit and was cut; it goes on in the next Line.
	Continued bool
	// Unterminated: a last line without '\n', given out because the caller asked to flush.
	Unterminated bool
}

// SplitLines cuts buf into lines of at most max bytes (terminator included) and appends
// them to out. A line ends at '\n' ("\r\n" lines keep their '\r': bytes pass untouched). A
// line longer than max is cut into parts of max bytes, each marked Continued. What is left
// (a last line without '\n', shorter than max) is held unless flush is set, when it is
// given out as an Unterminated line. It returns the lines and the bytes they cover, always
// a prefix of buf. It keeps no state: the caller passes the held bytes again with more data.
func SplitLines(buf []byte, max int, flush bool, out []Line) ([]Line, int) {
	if max < 1 {
		max = 1
	}
	n := 0
	for n < len(buf) {
		rest := buf[n:]
		if i := bytes.IndexByte(rest[:min(len(rest), max)], '\n'); i >= 0 {
			out = append(out, Line{Len: i + 1})
			n += i + 1
			continue
		}
		if len(rest) >= max {
			out = append(out, Line{Len: max, Continued: true})
			n += max
			continue
		}
		if flush {
			out = append(out, Line{Len: len(rest), Unterminated: true})
			n += len(rest)
		}
		break
	}
	return out, n
}

// Entry is what logcap publishes as one log event: a line, a part of a split line, or
// (multiline) several lines.
type Entry struct {
	Len       int
	Lines     int
	Continued bool // a part of a split line, continued in the next entry
}

// Multiline joins lines into entries. Exactly one of Start and Continue is set.
type Multiline struct {
	Start, Continue *regexp.Regexp
	MaxLines        int
	MaxBytes        int // an entry never grows beyond this (max_line_bytes)
}

// Join groups lines (SplitLines' output over buf) into entries and appends them to out.
// The last group is given out only when it is known complete: the next line starts another
// entry, it reached MaxLines or MaxBytes, or flush is set. Parts of a split line are
// entries of their own (they already are as big as an entry may be). A nil Multiline makes
// one entry per line. It returns the entries and the bytes they cover, a prefix of buf.
func (m *Multiline) Join(buf []byte, lines []Line, flush bool, out []Entry) ([]Entry, int) {
	consumed, off := 0, 0
	if m == nil {
		for _, l := range lines {
			out = append(out, Entry{Len: l.Len, Lines: 1, Continued: l.Continued})
			off += l.Len
		}
		return out, off
	}
	maxLines := max(m.MaxLines, 1)
	var cur Entry
	open, prevContinued := false, false
	closeCur := func() {
		if open {
			out = append(out, cur)
			consumed += cur.Len
			open = false
		}
	}
	for _, l := range lines {
		if l.Continued || prevContinued {
			closeCur()
			out = append(out, Entry{Len: l.Len, Lines: 1, Continued: l.Continued})
			consumed += l.Len
			prevContinued = l.Continued
			off += l.Len
			continue
		}
		content := streams.TrimEOL(buf[off : off+l.Len])
		joins := false
		if open {
			if m.Start != nil {
				joins = !m.Start.Match(content)
			} else if m.Continue != nil {
				joins = m.Continue.Match(content)
			}
			if cur.Lines >= maxLines || (m.MaxBytes > 0 && cur.Len+l.Len > m.MaxBytes) {
				joins = false
			}
		}
		if joins {
			cur.Len += l.Len
			cur.Lines++
		} else {
			closeCur()
			cur, open = Entry{Len: l.Len, Lines: 1}, true
		}
		off += l.Len
	}
	if open && (flush || cur.Lines >= maxLines || (m.MaxBytes > 0 && cur.Len >= m.MaxBytes)) {
		closeCur()
	}
	return out, consumed
}
