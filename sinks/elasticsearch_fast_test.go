package sinks

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// esNoErrorsDecoder is the fast path as it was, through encoding/json's Decoder: the
// reference the hand scan must agree with.
func esNoErrorsDecoder(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	var noErrors, seen bool
	var skip json.RawMessage
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false
		}
		if k, _ := key.(string); strings.EqualFold(k, "errors") {
			v, err := dec.Token()
			if err != nil {
				return false
			}
			seen, noErrors = true, v == false
			continue
		}
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		return false
	}
	return seen && noErrors
}

var esNoErrorsCases = []struct {
	body string
	want bool
}{
	{`{"took":1,"errors":false,"items":[{"create":{"_index":"logs","status":201}}]}`, true},
	{` { "errors" : false } `, true},
	{`{"ERRORS":false}`, true},
	{`{"errors":true,"items":[]}`, false},
	{`{"errors":false,"errors":true}`, false},
	{`{"errors":true,"errors":false}`, true},
	{`{"errors":null}`, false},
	{`{"errors":"false"}`, false},
	{`{"took":1}`, false},
	{`{"errors":false,"items":[}`, false},
	{`{"errors":false,}`, false},
	{`{"errors":false "took":1}`, false},
	{`{"errors":false} {}`, false},
	{`{"errors":false,"x":01}`, false},
	{`[{"errors":false}]`, false},
	{`{"errors":false`, false},
	{`{"\u0065rrors":true,"errors":false}`, false}, // an escaped key: the full decode decides
}

func TestESNoErrorsScan(t *testing.T) {
	for _, tc := range esNoErrorsCases {
		if got := esNoErrors([]byte(tc.body)); got != tc.want {
			t.Errorf("esNoErrors(%s) = %v, want %v", tc.body, got, tc.want)
		}
	}
}

// The hand scan says "no errors" only where the Decoder did, and agrees with it on every
// answer without escaped keys or deep nesting (where it leaves the doubt to the full decode).
func FuzzESNoErrorsScan(f *testing.F) {
	for _, tc := range esNoErrorsCases {
		f.Add(tc.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, want := esNoErrors([]byte(body)), esNoErrorsDecoder([]byte(body))
		// Escaped keys and deep nesting (more brackets than the scan's depth) it leaves to
		// the full decode.
		doubt := strings.Contains(body, `\`) || strings.Count(body, "[")+strings.Count(body, "{") > 500
		if got && !want || got != want && !doubt {
			t.Fatalf("esNoErrors(%q) = %v, the Decoder says %v", body, got, want)
		}
	})
}
