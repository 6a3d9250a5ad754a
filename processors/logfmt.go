package processors

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// parseLogfmt parses `key=value key2="quoted \"value\"" flag` into pairs, calling emit for
// each in order. A key ends at '=', white space or '"'; an unquoted value ends at white
// space; a quoted value takes the escapes \" \\ \/ \n \r \t \b \f and \uXXXX; a key with no
// '=' has the value "". Every value is a string: logfmt has no types.
func parseLogfmt(s string, emit func(k, v string)) error {
	i := 0
	for {
		for i < len(s) && isLogfmtSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != '"' && !isLogfmtSpace(s[i]) {
			i++
		}
		if i == start {
			if s[i] == '"' {
				return fmt.Errorf("col %d: unexpected quote where a key should start", i+1)
			}
			return fmt.Errorf("col %d: '=' without a key", i+1)
		}
		key := s[start:i]
		if i >= len(s) || isLogfmtSpace(s[i]) {
			emit(key, "")
			continue
		}
		if s[i] == '"' {
			return fmt.Errorf("col %d: unexpected quote in key %q", i+1, key)
		}
		i++ // '='
		if i >= len(s) || isLogfmtSpace(s[i]) {
			emit(key, "")
			continue
		}
		if s[i] != '"' {
			vs := i
			for i < len(s) && !isLogfmtSpace(s[i]) {
				if s[i] == '"' {
					return fmt.Errorf("col %d: unexpected quote in the value of %q", i+1, key)
				}
				i++
			}
			emit(key, s[vs:i])
			continue
		}
		v, n, err := unquoteLogfmt(s[i:])
		if err != nil {
			return fmt.Errorf("col %d: value of %q: %w", i+1, key, err)
		}
		i += n
		if i < len(s) && !isLogfmtSpace(s[i]) {
			return fmt.Errorf("col %d: want white space after the quoted value of %q", i+1, key)
		}
		emit(key, v)
	}
}

func isLogfmtSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// unquoteLogfmt reads a quoted value at the start of s and returns it and the bytes used.
// A value without escapes is a substring of s: no allocation.
func unquoteLogfmt(s string) (string, int, error) {
	// s[0] == '"'
	j := 1
	for j < len(s) && s[j] != '"' && s[j] != '\\' {
		j++
	}
	if j < len(s) && s[j] == '"' {
		return s[1:j], j + 1, nil
	}
	var b strings.Builder
	b.WriteString(s[1:j])
	for j < len(s) {
		c := s[j]
		switch c {
		case '"':
			return b.String(), j + 1, nil
		case '\\':
			if j+1 >= len(s) {
				return "", 0, errors.New("unterminated quote")
			}
			j++
			switch s[j] {
			case '"', '\\', '/':
				b.WriteByte(s[j])
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				r, ok := hex4(s[j+1:])
				if !ok {
					return "", 0, errors.New(`bad \u escape`)
				}
				j += 4
				if utf8.ValidRune(r) {
					b.WriteRune(r)
				} else {
					b.WriteRune(utf8.RuneError)
				}
			default:
				return "", 0, fmt.Errorf("bad escape \\%c", s[j])
			}
			j++
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, errors.New("unterminated quote")
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// appendLogfmt writes one pair the way parseLogfmt reads it back; quoting only when needed.
func appendLogfmt(b []byte, k, v string) []byte {
	if len(b) > 0 {
		b = append(b, ' ')
	}
	b = append(b, k...)
	b = append(b, '=')
	if v != "" && !strings.ContainsAny(v, " \t\r\n\"\\=") {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
