package sinks

import (
	"strings"

	"github.com/logcap/logcap/internal/jsonscan"
)

// esNoErrors says whether the answer's top-level "errors" is false (the last one, in any
// case, as encoding/json reads a repeated key), validating the other values without building
// them: decoding every item of every successful answer into maps was 19% of the sink's CPU,
// and reading them as tokens (json.Decoder) still 8–12% against VictoriaLogs, whose answer
// lists every item. Any doubt (no "errors" key, a key with escapes, a malformed or very deep
// answer) returns false: the full decode decides.
func esNoErrors(body []byte) bool {
	var d jsonscan.Decoder
	d.Reset(string(body))
	d.SkipSpace()
	if !d.Consume('{') {
		return false
	}
	var noErrors, seen bool
	if d.SkipSpace(); !d.Consume('}') {
		for {
			d.SkipSpace()
			k := d.Pos()
			if d.Peek() != '"' || !d.Skip() {
				return false
			}
			key := d.Consumed(k)
			if strings.IndexByte(key, '\\') >= 0 {
				return false // an escaped key could spell "errors"
			}
			if d.SkipSpace(); !d.Consume(':') {
				return false
			}
			d.SkipSpace()
			v := d.Pos()
			if !d.Skip() {
				return false
			}
			if strings.EqualFold(key[1:len(key)-1], "errors") { // as encoding/json matches keys
				seen, noErrors = true, d.Consumed(v) == "false"
			}
			if d.SkipSpace(); d.Consume(',') {
				continue
			}
			if !d.Consume('}') {
				return false
			}
			break
		}
	}
	d.SkipSpace()
	return seen && noErrors && d.Pos() == len(body)
}
