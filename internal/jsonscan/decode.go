// Package jsonscan is the JSON reading and writing of the processor path (the json step, the
// NDJSON of derived streams), written for it because encoding/json was 90% of that path's CPU
// (reflection, a scanner pass before the decode pass, one allocation per string). It reads
// and writes exactly what encoding/json does for the types the path uses (map[string]any,
// []any, string, bool, nil, int64, float64, json.Number), and it answers only when it is sure:
// on anything it does not handle (an error, a depth beyond its limit, a type it does not know)
// it says so, and its callers ask encoding/json, whose error messages users already see.
package jsonscan

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting (encoding/json allows 10000): deeper input goes to encoding/json.
const maxDepth = 512

// Decoder reads JSON values from one string. Strings without escapes are substrings of the
// input (no copy: the input is immutable); unescaped ones share one growing buffer per
// Decoder, so a chunk of entries costs one allocation for its strings, not one per string.
type Decoder struct {
	s     string
	i     int
	depth int
	arena strings.Builder
	// arenaHint sizes the arena when it is first needed (ReserveArena).
	arenaHint int
}

// Reset makes d read s from its start. Strings returned before stay valid.
func (d *Decoder) Reset(s string) {
	d.s, d.i, d.depth = s, 0, 0
}

// Pos is the offset of the next byte to read.
func (d *Decoder) Pos() int { return d.i }

// Rest is the input not read yet.
func (d *Decoder) Rest() string { return d.s[d.i:] }

// SkipSpace skips JSON white space: space, tab, CR, LF.
func (d *Decoder) SkipSpace() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// SkipSpaceNoNL skips white space but stops at a newline (NDJSON keeps documents per line).
func (d *Decoder) SkipSpaceNoNL() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\r':
			d.i++
		default:
			return
		}
	}
}

// Peek is the next byte, 0 at the end.
func (d *Decoder) Peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// Consume reads c if it is the next byte.
func (d *Decoder) Consume(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// Literal reads lit (true, false, null) if it is next.
func (d *Decoder) Literal(lit string) bool {
	if strings.HasPrefix(d.s[d.i:], lit) {
		d.i += len(lit)
		return true
	}
	return false
}

// Value reads one value of any kind, white space before it skipped. Objects become
// map[string]any, arrays []any, numbers int64 / float64 / json.Number (see Number).
func (d *Decoder) Value() (any, bool) {
	d.SkipSpace()
	if d.i >= len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; c {
	case '{':
		m, ok := d.Object()
		return m, ok
	case '[':
		return d.array()
	case '"':
		return d.String()
	case 't':
		return true, d.Literal("true")
	case 'f':
		return false, d.Literal("false")
	case 'n':
		return nil, d.Literal("null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.number()
		}
		return nil, false
	}
}

// Object reads an object; the next byte must be '{'. A key given twice keeps its last value,
// as in encoding/json.
func (d *Decoder) Object() (map[string]any, bool) {
	if !d.Consume('{') || d.depth >= maxDepth {
		return nil, false
	}
	d.depth++
	m, ok := d.members()
	d.depth--
	return m, ok
}

func (d *Decoder) members() (map[string]any, bool) {
	m := make(map[string]any, 8)
	d.SkipSpace()
	if d.Consume('}') {
		return m, true
	}
	for {
		d.SkipSpace()
		k, ok := d.String()
		if !ok {
			return nil, false
		}
		d.SkipSpace()
		if !d.Consume(':') {
			return nil, false
		}
		v, ok := d.Value()
		if !ok {
			return nil, false
		}
		m[k] = v
		d.SkipSpace()
		if d.Consume(',') {
			continue
		}
		return m, d.Consume('}')
	}
}

func (d *Decoder) array() ([]any, bool) {
	if !d.Consume('[') || d.depth >= maxDepth {
		return nil, false
	}
	d.depth++
	defer func() { d.depth-- }()
	a := []any{}
	d.SkipSpace()
	if d.Consume(']') {
		return a, true
	}
	for {
		v, ok := d.Value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.SkipSpace()
		if d.Consume(',') {
			continue
		}
		return a, d.Consume(']')
	}
}

// String reads a string; the next byte must be '"'. Invalid UTF-8 becomes U+FFFD, as in
// encoding/json.
func (d *Decoder) String() (string, bool) {
	if !d.Consume('"') {
		return "", false
	}
	start, s := d.i, d.s
	i := start + plainRun(s[start:])
	if i < len(s) && s[i] == '"' {
		d.i = i + 1
		return s[start:i], true
	}
	d.i = i
	if i < len(s) && s[i] == '\\' {
		// An escape: the string must be unquoted anyway, in one pass.
		return d.unescapeFrom(start)
	}
	return d.slowString(start)
}

// slowString unquotes a string that has escapes or non-ASCII bytes, from start (just after
// its opening quote; d.i is at the first byte that is not plain). Valid UTF-8 without
// escapes is still a substring.
func (d *Decoder) slowString(start int) (string, bool) {
	s, end, clean := d.s, d.i, true
	for end < len(s) {
		c := s[end]
		switch {
		case plain[c]:
			end++
		case c == '"':
			if clean {
				d.i = end + 1
				return s[start:end], true
			}
			return d.unescape(start, end)
		case c == '\\':
			clean = false
			end += 2
		case c < ' ':
			return "", false
		default:
			r, size := utf8.DecodeRuneInString(s[end:])
			if r == utf8.RuneError && size == 1 {
				clean = false
			}
			end += size
		}
	}
	return "", false
}

// unescape writes s[start:end] unquoted into the arena, the way encoding/json's unquote does.
func (d *Decoder) unescape(start, end int) (string, bool) {
	d.i = start
	str, ok := d.unescapeFrom(start)
	return str, ok && d.i == end+1
}

// unescapeFrom unquotes the string that starts at start (just after its opening quote) into
// the arena, in one pass up to its closing quote; d.i is at a byte of it, and all before it
// is plain.
func (d *Decoder) unescapeFrom(start int) (string, bool) {
	a := &d.arena
	if a.Cap()-a.Len() < len(d.s)-start {
		// A fresh buffer sized for the rest of the input: unquoted text is never longer
		// than the quoted text but for invalid UTF-8 (1 byte → 3), which the builder's own
		// growth covers. The strings already taken keep the old buffer.
		*a = strings.Builder{}
		a.Grow(max(len(d.s)-start, d.arenaHint, 64))
		d.arenaHint = 0
	}
	from := a.Len()
	s, r := d.s, start
	for {
		run := r + plainRun(s[r:])
		a.WriteString(s[r:run])
		if r = run; r >= len(s) {
			return "", false
		}
		switch c := s[r]; {
		case c == '"':
			d.i = r + 1
			return a.String()[from:], true
		case c == '\\':
			n, ok := d.escape(s[r:])
			if !ok {
				return "", false
			}
			r += n
		case c < ' ':
			return "", false
		default:
			rr, size := utf8.DecodeRuneInString(s[r:])
			a.WriteRune(rr) // RuneError for an invalid byte: U+FFFD
			r += size
		}
	}
}

// escape writes the escape at the start of s and returns its length.
func (d *Decoder) escape(s string) (int, bool) {
	if len(s) < 2 {
		return 0, false
	}
	a := &d.arena
	switch s[1] {
	case '"', '\\', '/':
		a.WriteByte(s[1])
	case 'b':
		a.WriteByte('\b')
	case 'f':
		a.WriteByte('\f')
	case 'n':
		a.WriteByte('\n')
	case 'r':
		a.WriteByte('\r')
	case 't':
		a.WriteByte('\t')
	case 'u':
		rr := getu4(s)
		if rr < 0 {
			return 0, false
		}
		n := 6
		if utf16.IsSurrogate(rr) {
			if dec := utf16.DecodeRune(rr, getu4(s[6:])); dec != unicode.ReplacementChar {
				a.WriteRune(dec)
				return 12, true
			}
			rr = unicode.ReplacementChar
		}
		a.WriteRune(rr)
		return n, true
	default:
		return 0, false
	}
	return 2, true
}

func getu4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number (scanNumber) and gives its value (Number).
func (d *Decoder) number() (any, bool) {
	start := d.i
	if !d.scanNumber() {
		return nil, false
	}
	return Number(d.s[start:d.i]), true
}

// scanNumber reads a number by the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *Decoder) scanNumber() bool {
	d.Consume('-')
	switch {
	case d.Consume('0'):
	case d.i < len(d.s) && d.s[d.i] >= '1' && d.s[d.i] <= '9':
		d.digits()
	default:
		return false
	}
	if d.Consume('.') && !d.digits() {
		return false
	}
	if d.Consume('e') || d.Consume('E') {
		if !d.Consume('+') {
			d.Consume('-')
		}
		if !d.digits() {
			return false
		}
	}
	return true
}

func (d *Decoder) digits() bool {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// Number is the value of a valid JSON number: int64 when it is an integer that fits,
// float64 otherwise, and json.Number (written back digit for digit) when it is an integer
// too big for int64 or a float beyond float64, so ids and counters never lose digits.
func Number(s string) any {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		return json.Number(s)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
		return f
	}
	return json.Number(s)
}

// ParseObject reads s as one JSON object with nothing after it but white space. ok=false
// means this reader is not sure: ask encoding/json (for its verdict and its error).
func ParseObject(s string) (map[string]any, bool) {
	var d Decoder
	d.Reset(s)
	d.SkipSpace()
	m, ok := d.Object()
	if !ok {
		return nil, false
	}
	d.SkipSpace()
	return m, d.i == len(d.s)
}

// ReserveArena makes room for n bytes of unescaped strings: a caller that reads many
// values (a chunk of entries, line by line) sizes the buffer once for all of them.
func (d *Decoder) ReserveArena(n int) {
	d.arenaHint = n
}

// Consumed is the input read since offset start.
func (d *Decoder) Consumed(start int) string { return d.s[start:d.i] }
