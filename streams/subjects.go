package streams

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Source kinds: the second token of a LOGS subject.
const (
	KindFile   = "file"
	KindDocker = "docker"
)

// LogsPrefix is the first token of every raw subject: logs.<kind>.<host>.<source>.
const LogsPrefix = "logs"

// EncodeToken makes s usable as one NATS subject token, readably and reversibly: bytes that
// NATS tokens cannot hold ('.', '*', '>', white space, control bytes, invalid UTF-8) and '%'
// itself become %XX (upper-case hex); everything else, '/' included, stays as it is. So
// "/var/log/app.log" is "/var/log/app%2Elog" and a user can type it. The empty string is "%".
func EncodeToken(s string) string {
	if s == "" {
		return "%"
	}
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			writeEscape(&b, s[i])
			i++
			continue
		}
		if size == 1 && escapeByte(s[i]) {
			writeEscape(&b, s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
		} else if escapeByte(s[i]) {
			return true
		}
	}
	return !ascii && !utf8.ValidString(s)
}

// escapeByte reports whether an ASCII byte cannot stand in a token as itself.
func escapeByte(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

const hexDigits = "0123456789ABCDEF"

func writeEscape(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&0xf])
}

// DecodeToken reverses EncodeToken.
func DecodeToken(tok string) (string, error) {
	if tok == "%" {
		return "", nil
	}
	if !strings.Contains(tok, "%") {
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			out = append(out, tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("token %q: truncated escape at byte %d", tok, i)
		}
		hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("token %q: bad escape at byte %d", tok, i)
		}
		out = append(out, byte(hi<<4|lo))
		i += 2
	}
	return string(out), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// Subject builds <prefix>.<kind>.<host>.<source> with host and source encoded.
func Subject(prefix, kind, host, source string) string {
	return prefix + "." + kind + "." + EncodeToken(host) + "." + EncodeToken(source)
}

// SourceSubject is the LOGS subject of one source.
func SourceSubject(kind, host, source string) string {
	return Subject(LogsPrefix, kind, host, source)
}

// SubjectParts are the decoded tokens of a logcap subject.
type SubjectParts struct {
	Prefix, Kind, Host, Source string
}

var errSubject = errors.New("want <prefix>.<kind>.<host>.<source>")

// ParseSubject splits and decodes a subject built by Subject.
func ParseSubject(subj string) (SubjectParts, error) {
	toks := strings.Split(subj, ".")
	if len(toks) != 4 {
		return SubjectParts{}, fmt.Errorf("subject %q: %w", subj, errSubject)
	}
	host, err := DecodeToken(toks[2])
	if err != nil {
		return SubjectParts{}, fmt.Errorf("subject %q: host: %w", subj, err)
	}
	src, err := DecodeToken(toks[3])
	if err != nil {
		return SubjectParts{}, fmt.Errorf("subject %q: source: %w", subj, err)
	}
	return SubjectParts{Prefix: toks[0], Kind: toks[1], Host: host, Source: src}, nil
}
