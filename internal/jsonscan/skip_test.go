package jsonscan

import (
	"encoding/json"
	"testing"
)

var skipCases = []struct {
	in   string
	want bool
}{
	{`{}`, true}, {`[]`, true}, {` {"a" : [1, -2.5e+3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9"]} `, true},
	{`{"took":1,"errors":false,"items":[{"create":{"status":201}}]}`, true},
	{`"\u12"`, false}, {`"\x"`, false}, {"\"a\nb\"", false}, {`"abc`, false}, {"\"\xff\"", true},
	{`{"a":1,}`, false}, {`[1,]`, false}, {`{"a" 1}`, false}, {`{"a":1 "b":2}`, false}, {`{1:2}`, false},
	{`01`, false}, {`-`, false}, {`1.`, false}, {`1e`, false}, {`1e+`, false}, {`-0.0E-0`, true},
	{`tru`, false}, {`truex`, false}, {`nul`, false}, {`[1true]`, false}, {``, false}, {` `, false},
	{`[[[[]]]]`, true}, {`[[[[]]]`, false}, {`{"a":{"b":[{}]}}x`, false}, {`+1`, false}, {`.5`, false},
}

// SkipValue over the whole input (and only white space after) is json.Valid.
func skipAll(b []byte) bool {
	i, ok := SkipValue(b, 0)
	return ok && SkipSpace(b, i) == len(b)
}

func TestSkipValueAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range skipCases {
		if got := skipAll([]byte(tc.in)); got != tc.want || got != json.Valid([]byte(tc.in)) {
			t.Errorf("SkipValue(%q) = %v, want %v (json.Valid %v)", tc.in, got, tc.want, json.Valid([]byte(tc.in)))
		}
	}
	deep := make([]byte, 0, 2*(maxSkipDepth+1))
	for range maxSkipDepth + 1 {
		deep = append(deep, '[')
	}
	for range maxSkipDepth + 1 {
		deep = append(deep, ']')
	}
	if skipAll(deep) {
		t.Errorf("SkipValue accepts %d levels of nesting", maxSkipDepth+1)
	}
}

func FuzzSkipValue(f *testing.F) {
	for _, tc := range skipCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got, want := skipAll([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Fatalf("SkipValue(%q) = %v, json.Valid = %v", in, got, want)
		}
	})
}
