package processors

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// TestSlotsAgreeWithTheMap: an expression compiled to read slots gives what the same
// expression gives on the fields map, value and error, with fields and without.
func TestSlotsAgreeWithTheMap(t *testing.T) {
	fields := map[string]any{"a": int64(1), "ab": "x", "b": map[string]any{"c": int64(2)}, "l": []any{int64(1), int64(2)}}
	for _, src := range []string{
		`fields["a" + "b"]`, `fields["a" + "b"] == "x"`, `fields.a == 1 or (fields.ab == "y" and false)`,
		`let f = fields.a; f`, `fields?.a`, `fields?.b?.c`, `fields.b.c`, `fields.zz?.c`, `fields.zz.c`,
		`any(fields.l, # == fields.a)`, `fields.a in [1, 2]`, `fields.ab matches "x"`, `fields.a + "x"`,
		`fields.l[0]`, `fields["a"] ?? 3`, `string(fields.a)`, `fields.b?.["c"]`, `fields["b"]["c"]`,
		`fields.ab == nil ? 1 : 2`, `fields[lower("AB")]`, `fields[("a")]`,
	} {
		p, err := compileExpr(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		ref, err := expr.Compile(src, expr.Env(exprEnv{}))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []map[string]any{fields, nil} {
			got, gerr := p.run(&event.Entry{Fields: f}, nil)
			want, werr := expr.Run(ref, &exprEnv{Fields: f})
			if !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) {
				t.Errorf("%s (fields %v, slots %q): got %v (%v), want %v (%v)", src, f != nil, p.fields, got, gerr, want, werr)
			}
		}
	}
	if _, err := compileExpr(`__field0 == nil`); err == nil || !strings.Contains(err.Error(), "unknown name __field0") {
		t.Errorf("a slot's name in an expression: %v, want unknown name", err)
	}
}

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
		{`fields.a == 1 && keys(fields) != nil`, nil, true},
		{`fields.a + fields.b + fields.c + fields.d + fields.e + fields.f + fields.g + fields.h == 8`, []string{"a", "b", "c", "d", "e", "f", "g", "h"}, false},
		{`fields.a + fields.b + fields.c + fields.d + fields.e + fields.f + fields.g + fields.h + fields.i == 9`, nil, true},
		{`$env.fields.a == 1`, nil, true},
		{`$env["fields"]["a"] == 1`, nil, true},
		// What the optimizer folds is read as written (the slots are patched in before it).
		{`fields["a" + "b"] == "x"`, nil, true},
		{`fields.level == "debug" or (fields.verbose == true and false)`, []string{"level", "verbose"}, false},
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
	`[{drop: 'fields["le" + "vel"] == "debug" or (fields.n == 2 and false)'}]`,
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
	// Each list three ways: alone, on entries made lazy by hand (each step looks up what it
	// reads); after a lazy json step (which looks it up for them); after an eager one.
	type run struct {
		name              string
		chain             *Chain
		lazyInput, isLazy bool
	}
	var runs []run
	for _, s := range lazySteps {
		withJSON := "[{json: {}}, " + s[1:]
		eager := buildChain(f, withJSON)
		eager.steps[0].step.(*jsonStep).lazy, eager.lookups = false, false
		runs = append(runs, run{s, buildChain(f, s), true, true}, run{withJSON, buildChain(f, withJSON), false, true},
			run{withJSON + " (eager)", eager, false, false})
	}
	// A step before the json step gets the chain's lookups too, before they are filled.
	before := `[{keep: 'fields.level != "debug"'}, {json: {}}, {drop: 'fields.n == 1'}]`
	runs = append(runs, run{before, buildChain(f, before), true, true})
	f.Fuzz(func(t *testing.T, msg string) {
		if members, ok := jsonscan.IsObject(msg); !ok || !members {
			t.Skip("a json step leaves only a JSON object with members lazy")
		}
		for _, r := range runs {
			// The reference: every step given the fields parsed.
			want := &event.Entry{Message: msg, FieldsFrom: event.FieldsFromJSON}
			want.Fields, _ = jsonscan.Parse(msg)
			c := r.chain
			if !r.lazyInput {
				c = &Chain{steps: c.steps[1:], keepsFieldsFrom: c.keepsFieldsFrom}
			}
			keepW, errW := c.Process(want)
			got := &event.Entry{Message: msg}
			if r.lazyInput {
				got.FieldsFrom = event.FieldsFromJSON
			}
			keep, err := r.chain.Process(got)
			if keep != keepW || (err == nil) != (errW == nil) {
				t.Fatalf("%s on %q: keep %v err %v, want keep %v err %v", r.name, msg, keep, err, keepW, errW)
			}
			if !r.isLazy && keep && got.FieldsFrom != "" && got.Fields == nil {
				t.Fatalf("%s on %q: lazy", r.name, msg)
			}
			materialize(got)
			if !sameEntry(want, got) {
				t.Fatalf("%s on %q:\nwant %+v\ngot  %+v", r.name, msg, *want, *got)
			}
		}
	})
}

func sameEntry(a, b *event.Entry) bool {
	return a.Message == b.Message && a.FieldsFrom == b.FieldsFrom && a.Route == b.Route &&
		a.Time.Equal(b.Time) && reflect.DeepEqual(a.Fields, b.Fields)
}
