package jsonscan

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// AppendString appends s quoted as encoding/json writes it with SetEscapeHTML(false):
// invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped, control characters escaped.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, &plain, plainRun(s)) }

// AppendStringHTML appends s quoted as encoding/json writes it by default: as AppendString,
// and '<', '>', '&' as \u003c, \u003e, \u0026 (the http, loki and elasticsearch sinks).
func AppendStringHTML(dst []byte, s string) []byte {
	return appendString(dst, s, &plainHTML, plainRunHTML(s))
}

// appendString quotes s; safe marks the ASCII bytes copied as they are, and s[:i] is known
// to be made of them.
func appendString(dst []byte, s string, safe *[256]bool, i int) []byte {
	dst = append(dst, '"')
	start := 0
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendTime appends t as time.Time's MarshalJSON does (RFC 3339 with nanoseconds, quoted).
// ok=false for a time MarshalJSON refuses (a year outside [0, 9999]).
func AppendTime(dst []byte, t time.Time) ([]byte, bool) {
	dst = append(dst, '"')
	out, err := t.AppendText(dst)
	if err != nil {
		return dst[:len(dst)-1], false
	}
	return append(out, '"'), true
}

// AppendValue appends v as encoding/json would (map keys sorted, no HTML escaping). ok=false
// for a value it does not handle or that encoding/json refuses (NaN, an invalid Number, a
// type other than those the path uses): ask encoding/json then.
func AppendValue(dst []byte, v any) ([]byte, bool) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return AppendString(dst, t), true
	case bool:
		return strconv.AppendBool(dst, t), true
	case int64:
		return strconv.AppendInt(dst, t, 10), true
	case int:
		return strconv.AppendInt(dst, int64(t), 10), true
	case float64:
		return appendFloat(dst, t)
	case json.Number:
		if t == "" {
			return append(dst, '0'), true
		}
		if !validNumber(string(t)) {
			return dst, false
		}
		return append(dst, t...), true
	case map[string]any:
		return AppendMap(dst, t)
	case []any:
		if t == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		ok := true
		for i, x := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, ok = AppendValue(dst, x); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	}
	return dst, false
}

// member is one key and value of a map being written.
type member struct {
	key   string
	value any
}

// AppendMap appends m as an object with its keys in sorted order (nil: null). The members
// are sorted with their values (looking each value up again by its key was a quarter of
// the time of an 8-field object, BenchmarkAppendMap8), in an array on the stack for a
// line's few fields: sorting pointers in a heap buffer cost GC write barriers, 6% of the
// CPU of file → json → file sink.
func AppendMap(dst []byte, m map[string]any) ([]byte, bool) {
	if m == nil {
		return append(dst, "null"...), true
	}
	var local [16]member
	ms := local[:0]
	if len(m) > len(local) {
		ms = make([]member, 0, len(m))
	}
	for k, v := range m {
		ms = append(ms, member{k, v})
	}
	sortMembers(ms)
	dst = append(dst, '{')
	ok := true
	for i := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, ms[i].key)
		dst = append(dst, ':')
		if dst, ok = AppendValue(dst, ms[i].value); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// sortMembers sorts by key: insertion sort for the few keys of a log line's fields.
func sortMembers(ms []member) {
	if len(ms) > 12 {
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
		return
	}
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && keyLess(ms[j].key, ms[j-1].key); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// keyLess is a < b, deciding by the first bytes inline when they differ (they mostly do
// among a line's keys): the string comparison's call was half of the sorting.
func keyLess(a, b string) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
}

// appendFloat is encoding/json's float64 encoding (ES6 number to string).
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// validNumber is the JSON number grammar.
func validNumber(s string) bool {
	var d Decoder
	d.Reset(s)
	return d.scanNumber() && d.i == len(s)
}
