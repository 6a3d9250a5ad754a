package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Parse parses s as one JSON object with nothing after it but white space, as the json
// step does: numbers become int64 when they are integers that fit, float64 otherwise, and
// stay json.Number (written back digit for digit) when they are integers too big for int64,
// so ids and counters never lose digits on their way to a sink. A lines+json derived chunk
// (streams.FormatLinesJSON) stores such fields as "the message parsed", so its readers call
// this too: the same fields on both sides.
//
// ParseObject reads it (strings are substrings of s, no reflection): 46 → 4 allocations and
// 5× less CPU per 8-field object than encoding/json (BenchmarkJSON8, BenchmarkJSONDecoders).
// What ParseObject is not sure of (any error among them) encoding/json reads, so the error
// stays the one users know.
func Parse(s string) (map[string]any, error) {
	if m, ok := ParseObject(s); ok {
		return m, nil
	}
	return parseStd(s)
}

func parseStd(s string) (map[string]any, error) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i == len(s) {
		return nil, errors.New("empty input")
	}
	if s[i] != '{' {
		return nil, fmt.Errorf("not an object (starts with %s)", describeStart(s[i]))
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	ConvertNumbers(m)
	return m, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func describeStart(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return strconv.QuoteRune(rune(c))
}

// ConvertNumbers turns the json.Number values encoding/json left in m (UseNumber), at any
// depth, into what Number makes of them: the values jsonscan's own reading gives.
func ConvertNumbers(m map[string]any) {
	for k, v := range m {
		if c, changed := convertNumber(v); changed {
			m[k] = c
		}
	}
}

func convertNumber(v any) (any, bool) {
	switch t := v.(type) {
	case json.Number:
		return Number(string(t)), true
	case map[string]any:
		ConvertNumbers(t)
	case []any:
		for i, x := range t {
			if c, changed := convertNumber(x); changed {
				t[i] = c
			}
		}
	}
	return nil, false
}

// IsObject reports whether Parse(s) would give an object with members, reading s without
// building anything: a json step whose fields nothing in its processor reads stores only
// that they are the message parsed (streams.FormatLinesJSON), and whoever reads them parses
// the message then. ok=false: not sure (Parse decides).
func IsObject(s string) (members, ok bool) { return Members(s, nil, nil) }

// Members is IsObject that also stores in dst, for each top-level member whose key is one
// of keys, the value Parse would give it; the other values are skipped, not built. A json
// step whose processor reads only `fields.level` after it gets that in its one pass over
// the message, and no map of all the fields. A key given twice keeps its last value, as in
// Parse.
func Members(s string, keys []string, dst map[string]any) (members, ok bool) {
	var d Decoder
	d.Reset(s)
	d.SkipSpace()
	if !d.Consume('{') {
		return false, false
	}
	d.depth++
	d.SkipSpace()
	if !d.Consume('}') {
		members = true
		for {
			d.SkipSpace()
			k, ok := d.String()
			if !ok {
				return false, false
			}
			d.SkipSpace()
			if !d.Consume(':') {
				return false, false
			}
			if wanted(keys, k) {
				v, ok := d.Value()
				if !ok {
					return false, false
				}
				dst[k] = v
			} else if !d.Skip() {
				return false, false
			}
			d.SkipSpace()
			if d.Consume(',') {
				continue
			}
			if !d.Consume('}') {
				return false, false
			}
			break
		}
	}
	d.SkipSpace()
	ok = d.i == len(d.s)
	return members && ok, ok
}

func wanted(keys []string, k string) bool {
	for _, w := range keys {
		if w == k {
			return true
		}
	}
	return false
}
