package config

import (
	"bytes"
	"fmt"
	"strings"
)

// ExpandEnv replaces ${VAR} and ${VAR:-default} in a config file's raw text, and $$ with a
// literal $. It works on the text before YAML parsing (so a variable can stand for any part of
// a value) and never adds or removes a line, so error lines still match the file.
//
// A lone $ not followed by { or $ is kept, so regular expressions such as '^foo$' need no
// escaping. Lines whose first non-blank character is # are comments and left untouched, so a
// commented-out line never fails on an unset variable. ${VAR:-default} uses default when VAR is
// unset or empty; ${VAR} with VAR unset is an error naming the line. A value with a newline is an
// error, since it would shift every later line.
func ExpandEnv(file string, data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	if bytes.IndexByte(data, '$') < 0 {
		return data, nil
	}
	var (
		out  = make([]byte, 0, len(data)+64)
		errs Errors
	)
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i+1], data[i+1:]
		} else {
			l, data = data, nil
		}
		if t := bytes.TrimLeft(l, " \t"); len(t) > 0 && t[0] == '#' {
			out = append(out, l...)
			continue
		}
		for len(l) > 0 {
			i := bytes.IndexByte(l, '$')
			if i < 0 || i == len(l)-1 {
				out = append(out, l...)
				break
			}
			out = append(out, l[:i]...)
			l = l[i:]
			switch l[1] {
			case '$':
				out = append(out, '$')
				l = l[2:]
				continue
			case '{':
			default:
				out = append(out, '$')
				l = l[1:]
				continue
			}
			end := bytes.IndexByte(l, '}')
			if end < 0 {
				errs = append(errs, &FieldError{File: file, Line: line, Msg: "unterminated ${ (write $$ for a literal $)"})
				out = append(out, l...)
				break
			}
			expr := string(l[2:end])
			l = l[end+1:]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				errs = append(errs, &FieldError{File: file, Line: line,
					Msg: fmt.Sprintf("invalid variable reference ${%s} (want ${NAME} or ${NAME:-default}; write $$ for a literal $)", expr)})
				continue
			}
			val, ok := lookup(name)
			switch {
			case hasDef && val == "":
				val = def
			case !ok:
				errs = append(errs, &FieldError{File: file, Line: line,
					Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)})
				continue
			}
			if strings.ContainsAny(val, "\r\n") {
				errs = append(errs, &FieldError{File: file, Line: line,
					Msg: fmt.Sprintf("environment variable %s contains a line break (not allowed in a config value)", name)})
				continue
			}
			out = append(out, val...)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
