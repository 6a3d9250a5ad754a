package processors

import (
	"strings"
	"unicode/utf8"
)

// The byte scans behind redact: the built-in patterns and the named fields in a message.

// maskKV replaces the value of every `name=value`, `name: value`, `"name":"value"` in msg
// (name matched case-insensitively as a whole word) with repl. Quoted values keep their
// quotes; a bare value ends at white space or one of `",;&}]`. A byte scan, not a regex: it
// runs on every entry.
func maskKV(msg, lowerName, repl string) string {
	var b strings.Builder
	last := 0
	for from := 0; ; {
		i := indexFold(msg[from:], lowerName)
		if i < 0 {
			break
		}
		start := from + i
		end := start + len(lowerName)
		from = end
		if start > 0 && isWordByte(msg[start-1]) || end < len(msg) && isWordByte(msg[end]) {
			continue // part of a longer word: "passwords", "old_password"
		}
		j := end
		if j < len(msg) && msg[j] == '"' {
			j++
		}
		j = skipSpaces(msg, j)
		if j >= len(msg) || msg[j] != ':' && msg[j] != '=' {
			continue
		}
		j = skipSpaces(msg, j+1)
		vStart, vEnd, quoted := j, j, false
		if j < len(msg) && msg[j] == '"' {
			quoted = true
			vStart = j + 1
			for vEnd = vStart; vEnd < len(msg) && msg[vEnd] != '"'; vEnd++ {
				if msg[vEnd] == '\\' {
					vEnd++
				}
			}
			vEnd = min(vEnd, len(msg))
		} else {
			for vEnd < len(msg) && !strings.ContainsRune(" \t\r\n\",;&}]", rune(msg[vEnd])) {
				vEnd++
			}
		}
		if vEnd == vStart && !quoted {
			continue
		}
		b.WriteString(msg[last:vStart])
		b.WriteString(repl)
		last, from = vEnd, vEnd
	}
	if last == 0 {
		return msg
	}
	b.WriteString(msg[last:])
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

// maskEmails replaces local@domain.tld addresses.
func maskEmails(s, repl string) string {
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return s
	}
	var b strings.Builder
	last := 0 // s[:last] has been written (or nothing has, while b is empty)
	for at >= 0 {
		start := at
		for start > last && isEmailLocal(s[start-1]) {
			start--
		}
		end := at + 1
		for end < len(s) && isDomainChar(s[end]) {
			end++
		}
		for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		next := at + 1
		if start < at && validDomain(s[at+1:end]) {
			b.Grow(len(s))
			b.WriteString(s[last:start])
			b.WriteString(repl)
			last, next = end, end
		}
		if next >= len(s) {
			break
		}
		i := strings.IndexByte(s[next:], '@')
		if i < 0 {
			break
		}
		at = next + i
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isEmailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomainChar(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// validDomain wants at least two non-empty labels and a top-level label of two or more letters.
func validDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || len(d)-dot-1 < 2 || strings.Contains(d, "..") || d[0] == '.' {
		return false
	}
	for i := dot + 1; i < len(d); i++ {
		if !isAlpha(d[i]) {
			return false
		}
	}
	return true
}

// maskCards replaces card numbers: 13 to 19 digits, optionally grouped by single spaces or
// dashes, starting with 2–6 (the issuer ranges of Visa, Mastercard, Amex, Discover, JCB,
// Diners and UnionPay) and passing the Luhn check. The first-digit rule keeps millisecond
// Unix timestamps (13 digits starting with 1) intact.
func maskCards(s, repl string) string {
	var b strings.Builder
	last := 0
	written := false
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		start := i
		end := i // one past the last digit of the run
		nd := 0
		for i < len(s) {
			if isDigit(s[i]) {
				nd++
				i++
				end = i
				continue
			}
			if (s[i] == ' ' || s[i] == '-') && i+1 < len(s) && isDigit(s[i+1]) {
				i++
				continue
			}
			break
		}
		if nd >= 13 && nd <= 19 && s[start] >= '2' && s[start] <= '6' && luhn(s[start:end]) {
			b.Grow(len(s))
			b.WriteString(s[last:start])
			b.WriteString(repl)
			last = end
			written = true
		}
	}
	if !written {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// luhn checks the digits of s, skipping separators.
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// maskAuth replaces credentials: the value of an `Authorization: ...` header (or
// "authorization": "..." in JSON, authorization=... in logfmt) up to the end of the line,
// the closing quote, or (after '=') the next space or '&'; and the token after any `Bearer `.
func maskAuth(s, repl string) string {
	return maskBearer(maskAuthHeader(s, repl), repl)
}

func maskAuthHeader(s, repl string) string {
	return maskAfterKey(s, "authorization", repl, func(k, i int) (int, int, bool) {
		if k > 0 && (isAlnum(s[k-1]) || s[k-1] == '_') {
			return 0, 0, false // proxy_authorization_mode, x-authorization-id: not the header
		}
		if i < len(s) && (s[i] == '"' || s[i] == '\'') {
			i++
		}
		i = skipSpaces(s, i)
		if i >= len(s) || (s[i] != ':' && s[i] != '=') {
			return 0, 0, false
		}
		// `Authorization: Basic xxx` runs to the end of the line; `authorization=xxx`
		// (logfmt, query strings) to the next space or '&'.
		eq := s[i] == '='
		i = skipSpaces(s, i+1)
		var quote byte
		if i < len(s) && (s[i] == '"' || s[i] == '\'') {
			quote = s[i]
			i++
		}
		vs := i
		for i < len(s) && s[i] != '\n' && s[i] != '\r' {
			if quote != 0 && s[i] == quote {
				break
			}
			if quote == 0 && eq && (s[i] == ' ' || s[i] == '\t' || s[i] == '&') {
				break
			}
			if quote != 0 && s[i] == '\\' && i+1 < len(s) {
				i++ // an escaped quote does not end the value
			}
			i++
		}
		return vs, i, i > vs
	})
}

func maskBearer(s, repl string) string {
	const key = "bearer"
	return maskAfterKey(s, key, repl, func(k, i int) (int, int, bool) {
		if k > 0 && isAlnum(s[k-1]) {
			return 0, 0, false
		}
		j := skipSpaces(s, i)
		if j == i {
			return 0, 0, false
		}
		vs := j
		for j < len(s) && isTokenChar(s[j]) {
			j++
		}
		if j == vs || s[vs:j] == repl || (j-vs == len(key) && asciiEqualFold(s[vs:j], key)) {
			return 0, 0, false // "Bearer Bearer xyz": the token is after the last keyword
		}
		return vs, j, true
	})
}

// maskAfterKey replaces with repl each value that value finds after an occurrence of key
// (ASCII, any case) in s: given the key's start k and end i, it returns the value's span
// [vs, ve), or false when this occurrence has none. The search goes on after the value.
func maskAfterKey(s, key, repl string, value func(k, i int) (vs, ve int, ok bool)) string {
	var b strings.Builder
	last, from := 0, 0
	written := false
	for {
		k := indexFold(s[from:], key)
		if k < 0 {
			break
		}
		k += from
		from = k + len(key)
		vs, ve, ok := value(k, from)
		if !ok {
			continue
		}
		b.Grow(len(s))
		b.WriteString(s[last:vs])
		b.WriteString(repl)
		last, from = ve, ve
		written = true
	}
	if !written {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// isTokenChar is RFC 6750's b64token alphabet.
func isTokenChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
}

func skipSpaces(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// indexFold is strings.Index for a lower-case needle, ignoring the ASCII case of s. It runs
// on every entry a redact step sees, once per named field: the candidates are found by
// strings.IndexByte (vectorised), for the first byte in each case.
func indexFold(s, lower string) int {
	c0, C0 := lower[0], lower[0]
	if 'a' <= c0 && c0 <= 'z' {
		C0 -= 'a' - 'A'
	}
	lo := indexByteFrom(s, c0, 0)
	up := lo
	if C0 != c0 {
		up = indexByteFrom(s, C0, 0)
	}
	for {
		i := lo
		if i < 0 || up >= 0 && up < i {
			i = up
		}
		if i < 0 || i+len(lower) > len(s) {
			return -1
		}
		if asciiEqualFold(s[i:i+len(lower)], lower) {
			return i
		}
		if i == lo {
			lo = indexByteFrom(s, c0, i+1)
		}
		if i == up {
			up = indexByteFrom(s, C0, i+1)
		}
	}
}

// indexByteFrom is the index of the first c in s at or after from, -1 if there is none.
func indexByteFrom(s string, c byte, from int) int {
	if i := strings.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

func asciiEqualFold(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
