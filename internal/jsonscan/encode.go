package jsonscan

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
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
// type other than those the path uses): ask encoding/json then. scratch holds map keys while
// they are sorted; it is returned for reuse.
func AppendValue(dst []byte, v any, scratch []string) ([]byte, []string, bool) {
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), scratch, true
	case string:
		return AppendString(dst, t), scratch, true
	case bool:
		return strconv.AppendBool(dst, t), scratch, true
	case int64:
		return strconv.AppendInt(dst, t, 10), scratch, true
	case int:
		return strconv.AppendInt(dst, int64(t), 10), scratch, true
	case float64:
		out, ok := appendFloat(dst, t)
		return out, scratch, ok
	case json.Number:
		if t == "" {
			return append(dst, '0'), scratch, true
		}
		if !validNumber(string(t)) {
			return dst, scratch, false
		}
		return append(dst, t...), scratch, true
	case map[string]any:
		return AppendMap(dst, t, scratch)
	case []any:
		if t == nil {
			return append(dst, "null"...), scratch, true
		}
		dst = append(dst, '[')
		ok := true
		for i, x := range t {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, scratch, ok = AppendValue(dst, x, scratch); !ok {
				return dst, scratch, false
			}
		}
		return append(dst, ']'), scratch, true
	}
	return dst, scratch, false
}

// AppendMap appends m as an object with its keys in sorted order (nil: null).
func AppendMap(dst []byte, m map[string]any, scratch []string) ([]byte, []string, bool) {
	if m == nil {
		return append(dst, "null"...), scratch, true
	}
	base := len(scratch)
	for k := range m {
		scratch = append(scratch, k)
	}
	keys := scratch[base:]
	slices.Sort(keys)
	dst = append(dst, '{')
	ok := true
	for i := base; i < len(scratch); i++ {
		k := scratch[i]
		if i > base {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		// Nested maps put their keys after ours in scratch; ours stay where they are.
		if dst, scratch, ok = AppendValue(dst, m[k], scratch); !ok {
			return dst, scratch[:base], false
		}
	}
	return append(dst, '}'), scratch[:base], true
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
	_, ok := d.number()
	return ok && d.i == len(s)
}
