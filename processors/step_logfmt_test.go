package processors

import (
	"strings"
	"testing"

	"github.com/logcap/logcap/event"
)

func TestLogfmtStep(t *testing.T) {
	huge := strings.Repeat("v", 1<<20)
	runStepCases(t, newStep(t, "logfmt: {}"), []stepCase{
		{name: "pairs", msg: `level=info msg=started port=8080`, keep: true, outcome: "ok",
			want: `{"level":"info","msg":"started","port":"8080"}`},
		{name: "quoted and escaped", msg: `msg="hello \"world\"\n\tbye\\" path="/a b" u="\u00e9"`, keep: true, outcome: "ok",
			want: `{"msg":"hello \"world\"\n\tbye\\","path":"/a b","u":"é"}`},
		{name: "bare key and empty values", msg: `debug a= b="" c=1`, keep: true, outcome: "ok",
			want: `{"a":"","b":"","c":"1","debug":""}`},
		{name: "duplicate key: last wins", msg: `a=1 a=2`, keep: true, outcome: "ok", want: `{"a":"2"}`},
		{name: "value with =", msg: `q=a=b`, keep: true, outcome: "ok", want: `{"q":"a=b"}`},
		{name: "dotted key does not nest", msg: `http.status=200`, keep: true, outcome: "ok", want: `{"http.status":"200"}`},
		{name: "empty message", msg: "", keep: true, outcome: "unmatched", want: "null"},
		{name: "only spaces", msg: "  \t ", keep: true, outcome: "unmatched", want: "null"},
		{name: "unterminated quote", msg: `a=1 msg="oops`, fields: map[string]any{"x": 1}, keep: true, outcome: "tolerated",
			errContains: `logfmt: col 9: value of "msg": unterminated quote`, want: `{"_error":"logfmt: col 9: value of \"msg\": unterminated quote","x":1}`},
		{name: "bad escape", msg: `a="\q"`, keep: true, outcome: "tolerated", errContains: `bad escape \q`},
		{name: "bad unicode escape", msg: `a="\u12"`, keep: true, outcome: "tolerated", errContains: `bad \u escape`},
		{name: "key missing", msg: `=x`, keep: true, outcome: "tolerated", errContains: `'=' without a key`},
		{name: "quote inside unquoted value", msg: `a=b"c`, keep: true, outcome: "tolerated", errContains: "unexpected quote"},
		{name: "junk after quoted value", msg: `a="b"c`, keep: true, outcome: "tolerated", errContains: "want white space"},
		{name: "invalid UTF-8 kept as bytes", msg: "a=\xff\xfe b=\"\xc3\"", keep: true, outcome: "ok"},
		{name: "huge value", msg: "k=" + huge, keep: true, outcome: "ok"},
	})
}

func TestLogfmtTarget(t *testing.T) {
	e := &event.Entry{Fields: map[string]any{"line": `a=1 b=2`}}
	if _, err := newStep(t, "logfmt: {field: line, target: kv}").Apply(e); err != nil {
		t.Fatal(err)
	}
	if got := fieldsJSON(t, e.Fields); got != `{"kv":{"a":"1","b":"2"},"line":"a=1 b=2"}` {
		t.Fatalf("fields = %s", got)
	}
}

type kv struct{ k, v string }

func logfmtPairs(s string) ([]kv, error) {
	var out []kv
	err := parseLogfmt(s, func(k, v string) { out = append(out, kv{k, v}) })
	return out, err
}

// FuzzLogfmt: never panics; what parses re-encodes (appendLogfmt) to text that parses to
// the same pairs in the same order; keys never hold white space, '=' or '"'.
func FuzzLogfmt(f *testing.F) {
	for _, s := range []string{`a=1 b="two words" c`, `msg="\"q\" \\ \n \u00e9"`, `=x`, `a="unterminated`,
		"a=\xff b=\"\xc3\x28\"", `a=b=c`, ` `, `k="\ud800"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pairs, err := logfmtPairs(s)
		if err != nil {
			return
		}
		var b []byte
		for _, p := range pairs {
			if p.k == "" || strings.ContainsAny(p.k, " \t\r\n=\"") {
				t.Fatalf("bad key %q from %q", p.k, s)
			}
			b = appendLogfmt(b, p.k, p.v)
		}
		again, err := logfmtPairs(string(b))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v (from %q)", b, err, s)
		}
		if len(again) != len(pairs) {
			t.Fatalf("round trip %q -> %q: %d pairs, want %d", s, b, len(again), len(pairs))
		}
		for i := range pairs {
			if again[i] != pairs[i] {
				t.Fatalf("round trip %q -> %q: pair %d = %q, want %q", s, b, i, again[i], pairs[i])
			}
		}
	})
}
