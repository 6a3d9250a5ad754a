package processors

import (
	"reflect"
	"slices"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

func TestFieldsRead(t *testing.T) {
	for _, tc := range []struct {
		expr  string
		names []string
		all   bool
	}{
		{`fields.level == "debug"`, []string{"level"}, false},
		{`fields["level"] == "debug" || fields.level == "trace"`, []string{"level"}, false},
		{`fields.http.status >= 500 and fields?.user != nil`, []string{"http", "user"}, false},
		{`message contains "x" && source == "a"`, nil, false},
		{`len(fields) > 2`, nil, true},
		{`"level" in fields`, nil, true},
		{`fields[message] == 1`, nil, true},
		{`fields.a == 1 && keys(fields) != nil`, []string{"a"}, true},
		{`$env.fields.a == 1`, nil, true},
		{`$env["fields"]["a"] == 1`, nil, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			p, err := compileExpr(tc.expr, expr.AsBool())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.fields, tc.names) || p.allFields != tc.all {
				t.Fatalf("fields %q all %v; want %q %v", p.fields, p.allFields, tc.names, tc.all)
			}
		})
	}
}

// lazySteps are steps that read lazy entries as they are (lazyReader), each alone and
// together: whatever the message, they must do to a lazy entry what they do to the same
// entry with its fields parsed.
var lazySteps = []string{
	`[{drop: 'fields.level == "debug"'}]`,
	`[{keep: 'fields.n > 1 || fields.user?.name == "bo"'}]`,
	`[{keep: 'len(fields) > 2'}]`,
	`[{route: {if: 'fields["level"] in ["error", "warn"]', to: errors}}]`,
	`[{sample: {rate: 3, key: 'fields.user'}}]`,
	`[{timestamp: {field: t}}]`,
	`[{timestamp: {field: t.s, layout: unix}}]`,
	`[{redact: {fields: [password, key]}}]`,
	`[{redact: {fields: [пароль]}}]`,
	`[{redact: {patterns: [email, credit_card, bearer_token]}}]`,
	`[{redact: {fields: [Pass], patterns: ['^\d+$']}}]`,
	`[{drop: 'fields.level == "debug"'}, {redact: {fields: [password], patterns: [email]}}, {route: {if: 'fields.n == 2', to: x}}]`,
}

func FuzzLazyFields(f *testing.F) {
	for _, s := range []string{
		`{"level":"debug","n":2}`, `{"level":"info","n":2,"user":{"name":"bo"}}`, `{"t":"2026-12-06T10:00:00Z","level":"warn"}`,
		`{"t":{"s":1765000000}}`, `{"t":1}`, `{"password":"x","a":[{"Key":{"k":1}}]}`, `{"a":"x@example.com"}`,
		`{"a":"4111 1111 1111 1111","b":"Bearer abc.def"}`, `{"h":"authorization: Basic x"}`, `{"a":"123"}`,
		`{"pass\u0077ord":1}`, `{"a":"x\u0040example.com"}`, "{\"\u212aey\":1}", `{"ПАРОЛЬ":1}`, `{"n":1,"n":3}`, `{"a":"x\"@example.com"}`,
	} {
		f.Add(s)
	}
	chains := make([]*Chain, len(lazySteps))
	for i, s := range lazySteps {
		chains[i] = buildChain(f, s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		if members, ok := jsonscan.IsObject(msg); !ok || !members {
			t.Skip("a json step leaves only a JSON object with members lazy")
		}
		parsed, err := jsonscan.Parse(msg)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range chains {
			eager := &event.Entry{Message: msg, Fields: parsed, FieldsFrom: event.FieldsFromJSON}
			lz := &event.Entry{Message: msg, FieldsFrom: event.FieldsFromJSON}
			eager.Fields, _ = jsonscan.Parse(msg) // its own copy: steps change fields in place
			keepE, errE := c.Process(eager)
			keepL, errL := c.Process(lz)
			if keepE != keepL || (errE == nil) != (errL == nil) {
				t.Fatalf("%s on %q: eager keep %v err %v, lazy keep %v err %v", lazySteps[i], msg, keepE, errE, keepL, errL)
			}
			materialize(lz)
			if !sameEntry(eager, lz) {
				t.Fatalf("%s on %q:\neager %+v\nlazy  %+v", lazySteps[i], msg, *eager, *lz)
			}
		}
	})
}

func sameEntry(a, b *event.Entry) bool {
	return a.Message == b.Message && a.FieldsFrom == b.FieldsFrom && a.Route == b.Route &&
		a.Time.Equal(b.Time) && reflect.DeepEqual(a.Fields, b.Fields)
}
