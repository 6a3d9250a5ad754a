package sinks

import (
	"bytes"
	"encoding/json"
	"strings"
)

// esNoErrors says whether the answer's top-level "errors" is false (the last one, in any
// case, as encoding/json reads a repeated key), without decoding the other values: decoding
// every item of every successful answer into maps was 19% of the sink's CPU, and reading them
// as tokens (json.Decoder) still 8% against VictoriaLogs, whose answer lists every item. The
// answer is first checked to be valid JSON (json.Valid: a scan without allocations); then only
// the top level is walked. Any doubt (no "errors" key, a key with escapes, a malformed
// answer) returns false: the full decode decides.
func esNoErrors(body []byte) bool {
	if !json.Valid(body) {
		return false
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	var noErrors, seen bool
	for i++; ; {
		i = skipSpace(body, i)
		switch body[i] {
		case '}':
			return seen && noErrors
		case ',':
			i = skipSpace(body, i+1)
		}
		// A key: valid JSON guarantees a string here.
		end := skipString(body, i)
		key := body[i+1 : end-1]
		i = skipSpace(body, end)
		i = skipSpace(body, i+1) // the ':'
		vend := skipValue(body, i)
		if bytes.IndexByte(key, '\\') >= 0 {
			return false // an escaped key could spell "errors": let the full decode read it
		}
		if strings.EqualFold(string(key), "errors") { // as encoding/json matches keys
			seen, noErrors = true, string(body[i:vend]) == "false"
		}
		i = vend
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'), in valid JSON.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value starting at b[i], in valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
