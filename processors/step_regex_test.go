package processors

import (
	"strings"
	"testing"

	"github.com/logcap/logcap/event"
)

func TestRegexStep(t *testing.T) {
	s := newStep(t, `regex: {pattern: '^(?P<ip>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3})(?: (?P<size>\d+))?'}`)
	runStepCases(t, s, []stepCase{
		{name: "access log", msg: `10.0.0.1 - - [27/Nov/2026:13:18:38 +0000] "GET /index.html HTTP/1.1" 200 512`, keep: true, outcome: "ok",
			want: `{"ip":"10.0.0.1","method":"GET","path":"/index.html","size":"512","status":"200"}`},
		{name: "optional group absent", msg: `10.0.0.1 - - [x] "GET / HTTP/1.1" 304`, keep: true, outcome: "ok",
			want: `{"ip":"10.0.0.1","method":"GET","path":"/","status":"304"}`},
		{name: "no match: unchanged", msg: `hello`, fields: map[string]any{"a": 1}, keep: true, outcome: "unmatched", want: `{"a":1}`},
		{name: "empty message", msg: ``, keep: true, outcome: "unmatched", want: `null`},
		{name: "invalid UTF-8", msg: "\xff - - [x] \"GET /\xfe HTTP/1.1\" 200", keep: true, outcome: "ok",
			want: `{"ip":"\ufffd","method":"GET","path":"/\ufffd","status":"200"}`}, // json.Marshal escapes the raw bytes
		{name: "overwrites existing field", msg: `1.2.3.4 - - [x] "PUT /a" 500`, fields: map[string]any{"status": 1}, keep: true, outcome: "ok",
			want: `{"ip":"1.2.3.4","method":"PUT","path":"/a","status":"500"}`},
		{name: "huge line", msg: `1.2.3.4 - - [x] "GET /` + strings.Repeat("a", 1<<20) + `" 200`, keep: true, outcome: "ok"},
	})

	nested := newStep(t, `regex: {pattern: 'user=(?P<user>\w+)', field: req.line}`)
	runStepCases(t, nested, []stepCase{
		{name: "nested field", fields: map[string]any{"req": map[string]any{"line": "x user=bob"}}, keep: true, outcome: "ok",
			want: `{"req":{"line":"x user=bob"},"user":"bob"}`},
		{name: "missing field", msg: "user=bob", keep: true, outcome: "unmatched", want: `null`},
	})
}

// FuzzRegexStep: never panics, never drops; a match sets exactly the groups that took part,
// each to a substring of the input.
func FuzzRegexStep(f *testing.F) {
	for _, s := range []string{"level=info msg=hi", "level= msg=", "", "\xff level=\xfe", "msg=only"} {
		f.Add(s)
	}
	s := newStep(f, `regex: {pattern: '(?:level=(?P<level>\S*))?\s*msg=(?P<msg>.*)'}`)
	f.Fuzz(func(t *testing.T, in string) {
		e := &event.Entry{Message: in}
		keep, err := s.Apply(e)
		if !keep {
			t.Fatal("dropped")
		}
		switch outcome(err) {
		case "unmatched":
			if e.Fields != nil {
				t.Fatalf("no match but fields = %v", e.Fields)
			}
		case "ok":
			m, ok := e.Fields["msg"].(string)
			if !ok || !strings.Contains(in, m) {
				t.Fatalf("msg = %q not in %q", m, in)
			}
			if l, ok := e.Fields["level"]; ok && !strings.Contains(in, l.(string)) {
				t.Fatalf("level = %q not in %q", l, in)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
