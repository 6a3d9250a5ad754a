package jsonscan

import (
	"math/bits"
	"unicode/utf8"
)

// plain marks the bytes a string can hold as they are: ASCII from space up, but '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainHTML is plain without the characters encoding/json escapes for HTML: '<', '>', '&'.
var plainHTML = func() (t [256]bool) {
	t = plain
	t['<'], t['>'], t['&'] = false, false, false
	return t
}()

// plainRun is the length of the run of plain bytes at the start of s, eight bytes at a time
// while they are all plain (log messages are mostly long plain runs).
func plainRun(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// A byte is not plain when it is ≥ 0x80, < 0x20, '"' or '\\' (the classic "has a
		// zero byte" test on x, on x^'"' and on x^'\\', and "has a byte less than 0x20").
		q, b := x^(lsb*'"'), x^(lsb*'\\')
		bad := x | (x - lsb*0x20) | ((q - lsb) &^ q) | ((b - lsb) &^ b)
		if bad&msb != 0 {
			// The lowest flagged byte is exact (a borrow only flags bytes above the first
			// one it starts at): it ends the run, with no byte loop over the word again.
			return i + bits.TrailingZeros64(bad&msb)/8
		}
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}

// plainRunHTML is plainRun for plainHTML: '<', '>' and '&' end the run too (the same
// zero-byte test on x^'<', x^'>' and x^'&'). Without it, AppendStringHTML went byte by byte
// through a table: a fifth of the elasticsearch sink's encoding.
func plainRunHTML(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, b := x^(lsb*'"'), x^(lsb*'\\')
		l, g, a := x^(lsb*'<'), x^(lsb*'>'), x^(lsb*'&')
		bad := x | (x - lsb*0x20) | ((q - lsb) &^ q) | ((b - lsb) &^ b) |
			((l - lsb) &^ l) | ((g - lsb) &^ g) | ((a - lsb) &^ a)
		if bad&msb != 0 {
			break
		}
	}
	for i < len(s) && plainHTML[s[i]] {
		i++
	}
	return i
}
