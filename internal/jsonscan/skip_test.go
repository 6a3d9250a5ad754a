package jsonscan

import (
	"encoding/json"
	"reflect"
	"strings"
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

// skipAll: Skip over the whole input, and only white space after it.
func skipAll(s string) bool {
	var d Decoder
	d.Reset(s)
	ok := d.Skip()
	d.SkipSpace()
	return ok && d.Pos() == len(s)
}

// Skip over a whole input is json.Valid, except that nesting deeper than maxDepth is refused
// (a reader falls back to encoding/json there).
func TestSkipAgreesWithJSONValid(t *testing.T) {
	for _, tc := range skipCases {
		if got := skipAll(tc.in); got != tc.want || got != json.Valid([]byte(tc.in)) {
			t.Errorf("Skip(%q) = %v, want %v (json.Valid %v)", tc.in, got, tc.want, json.Valid([]byte(tc.in)))
		}
	}
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if skipAll(deep) {
		t.Errorf("Skip accepts %d levels of nesting", maxDepth+1)
	}
}

func FuzzSkipValid(f *testing.F) {
	for _, tc := range skipCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got, want := skipAll(in), json.Valid([]byte(in)); got && !want {
			t.Fatalf("Skip(%q) accepts what json.Valid refuses", in)
		}
	})
}

// IsObject says yes only where Parse gives an object, with members exactly when the object
// has some: a json step stores "the message parsed" on its word, and the reader parses.
func FuzzIsObject(f *testing.F) {
	for _, s := range []string{`{}`, ` { } `, `{"a":1}`, "{\n\"a\": [1, {\"b\": null}]}\n", `{"a":1} x`, `{"a":1`, `[1]`, `"s"`, ``, `{"a":1,"a":2}`, "{\"\xff\":1}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		members, ok := IsObject(s)
		if !ok {
			return
		}
		m, err := Parse(s)
		if err != nil {
			t.Fatalf("IsObject(%q) ok, Parse: %v", s, err)
		}
		if members != (len(m) > 0) {
			t.Fatalf("IsObject(%q): members %v, Parse gave %d", s, members, len(m))
		}
	})
}

func TestIsObject(t *testing.T) {
	for _, tc := range []struct {
		in            string
		members, isOK bool
	}{
		{`{}`, false, true}, {` { } `, false, true}, {`{"a":1}`, true, true}, {"{\n\"a\": [1]}\n", true, true},
		{`{"a":1} x`, false, false}, {`{"a":1`, false, false}, {`[1]`, false, false}, {``, false, false},
	} {
		if members, ok := IsObject(tc.in); members != tc.members || ok != tc.isOK {
			t.Errorf("IsObject(%q) = %v, %v; want %v, %v", tc.in, members, ok, tc.members, tc.isOK)
		}
	}
}

// Members gives, for the keys asked, what Parse gives, and says yes wherever ParseObject
// does: a step that looks up fields in a message sees what it would see in the fields.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` {"a" : [1, {"b": null}], "b":"x\u00e9"} `, `{"a":1,"a":{"z":2}}`,
		`{"a\u0062":1}`, `{"a":1} x`, `{"a":1`, `{"a":01}`, `[1]`, ``, "{\"\xff\":1}", `{"a":1,"b":tru}`} {
		f.Add(s, "a")
		f.Add(s, "b")
	}
	f.Fuzz(func(t *testing.T, s, key string) {
		got := map[string]any{}
		members, ok := Members(s, []string{key, "absent"}, got)
		_, fast := ParseObject(s)
		if fast && !ok {
			t.Fatalf("Members(%q) not sure where ParseObject is", s)
		}
		if !ok {
			return
		}
		m, err := Parse(s)
		if err != nil {
			t.Fatalf("Members(%q) ok, Parse: %v", s, err)
		}
		want := map[string]any{}
		if members != (len(m) > 0) {
			t.Fatalf("Members(%q): members %v, Parse gave %d", s, members, len(m))
		}
		for _, k := range []string{key, "absent"} {
			if v, found := m[k]; found {
				want[k] = v
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Members(%q, %q) = %#v; Parse gives %#v", s, key, got, want)
		}
	})
}
