package processors

import (
	"reflect"
	"strings"
	"testing"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// panicStep panics on a message of "boom": a stand-in for a bug in a step.
type panicStep struct{}

func (panicStep) Apply(e *event.Entry) (bool, error) {
	if e.Message == "boom" {
		var m map[string]int
		m["x"] = 1 // assignment to entry in nil map
	}
	return true, nil
}

func init() {
	Register("test_panic", func(config.Options) (Step, error) { return panicStep{}, nil })
}

func TestChainOrderAndStats(t *testing.T) {
	c := buildChain(t, `
  - json: {}
  - rename: {fields: {lvl: level}}
  - drop: 'fields.level == "debug"'
  - test_panic
  - regex: {pattern: '^(?P<word>\w+)$'}
  - redact: {fields: [password]}
`)
	type result struct {
		keep bool
		err  string
	}
	inputs := []struct {
		msg  string
		want result
	}{
		{`{"lvl":"info","password":"x"}`, result{true, ""}},
		{`{"lvl":"debug"}`, result{false, ""}},
		{`not json`, result{true, ""}},
		{`boom`, result{false, "steps[3] (test_panic): panic: assignment to entry in nil map"}},
		{`word`, result{true, ""}},
	}
	var kept []*event.Entry
	for _, in := range inputs {
		e := &event.Entry{Message: in.msg}
		keep, err := c.Process(e)
		got := result{keep: keep}
		if err != nil {
			got.err = err.Error()
		}
		if got != in.want {
			t.Errorf("%q: got %+v, want %+v", in.msg, got, in.want)
		}
		if keep {
			kept = append(kept, e)
		}
	}
	// Steps ran in order: rename saw what json produced, redact what rename left.
	if got := fieldsJSON(t, kept[0].Fields); got != `{"level":"info","password":"[REDACTED]"}` {
		t.Errorf("first entry fields = %s", got)
	}
	if got := fieldsJSON(t, kept[2].Fields); got != `{"_error":"json: not an object (starts with 'w')","word":"word"}` {
		t.Errorf("last entry fields = %s", got)
	}
	want := []StepStats{
		{Index: 0, Type: "json", In: 5, Out: 5, Errors: 3}, // not json, boom, word
		{Index: 1, Type: "rename", In: 5, Out: 5},
		{Index: 2, Type: "drop", In: 5, Out: 4, Dropped: 1},
		{Index: 3, Type: "test_panic", In: 4, Out: 3, Errors: 1},
		{Index: 4, Type: "regex", In: 3, Out: 3, Unmatched: 2},
		{Index: 5, Type: "redact", In: 3, Out: 3},
	}
	if got := c.Stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("stats:\n got %+v\nwant %+v", got, want)
	}
}

func TestChainEmpty(t *testing.T) {
	c, err := BuildChain(nil)
	if err != nil {
		t.Fatal(err)
	}
	if keep, err := c.Process(&event.Entry{Message: "x"}); !keep || err != nil {
		t.Fatalf("empty chain: keep=%v err=%v", keep, err)
	}
}

func TestChainBareStepName(t *testing.T) {
	c := buildChain(t, "  - json\n  - logfmt:\n")
	if got := c.Stats(); len(got) != 2 || got[0].Type != "json" || got[1].Type != "logfmt" {
		t.Fatalf("stats = %+v", got)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct{ name, steps, want string }{
		{"unknown step", "  - nope: {}\n", `steps[0] (nope): unknown step "nope"`},
		{"two keys", "  - json: {}\n  - {json: {}, drop: 'true'}\n", "steps[1]: one step per list item, got 2 keys (json, drop)"},
		{"empty mapping", "  - {}\n", "steps[0]: empty step"},
		{"not a mapping", "  - [a]\n", "steps[0]: want a one-key mapping"},
		{"unknown option key", "  - json: {feild: x}\n", `steps[0] (json): [2:12] unknown field "feild"`},
		{"bad regex", "  - regex: {pattern: '(?P<x>['}\n", "steps[0] (regex): pattern: error parsing regexp"},
		{"regex without names", "  - regex: {pattern: '\\d+'}\n", "no named group"},
		{"syntax error", "  - json: {}\n  - drop: 'fields.level =='\n", `steps[1] (drop): expression "fields.level ==": unexpected token EOF`},
		{"not a boolean", "  - keep: 'message + \"x\"'\n", `steps[0] (keep): expression "message + \"x\"": expected bool, but got string`},
		{"unknown variable", "  - drop: 'level == 1'\n", `steps[0] (drop): expression "level == 1": unknown name level`},
		{"drop with a mapping", "  - drop: {if: x}\n", "steps[0] (drop): want an expression string, got a mapping"},
		{"route without to", "  - route: {if: 'true'}\n", "steps[0] (route): to: required"},
		{"route bad subject", "  - route: {if: 'true', to: 'a.>'}\n", "not a valid subject prefix"},
		{"route bad expr", "  - route: {if: 'fields.', to: e}\n", "steps[0] (route): if: expression"},
		{"timestamp bad zone", "  - timestamp: {timezone: Mars/Olympus}\n", "steps[0] (timestamp): timezone: unknown time zone Mars/Olympus"},
		{"timestamp bad layout", "  - timestamp: {layout: iso}\n", `layout "iso"`},
		{"sample rate", "  - sample: {rate: 0}\n", "steps[0] (sample): rate: required"},
		{"sample bad key", "  - sample: {rate: 2, key: 'fields.'}\n", "steps[0] (sample): key: expression"},
		{"redact nothing", "  - redact: {}\n", "nothing to redact"},
		{"redact bad custom", "  - redact: {patterns: ['a(']}\n", "steps[0] (redact): patterns[0]: error parsing regexp"},
		{"set nothing", "  - set: {}\n", "steps[0] (set): fields: required"},
		{"rename to non-string", "  - rename: {fields: {a: [b]}}\n", "want old: new"},
		{"remove empty segment", "  - remove: {fields: [a..b]}\n", "empty segment"},
		{"json bad target", "  - json: {target: '.x'}\n", "steps[0] (json): target: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildChain(parseSteps(t, tc.steps))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// FieldsFrom says "json" exactly when an entry's fields are its message parsed and nothing
// else, whatever steps came after the json step: a lines+json derived chunk then stores a
// reference instead of the fields (streams.FormatLinesJSON).
func TestFieldsFrom(t *testing.T) {
	for _, tc := range []struct {
		name, steps, msg string
		fields           map[string]any // set before the chain: a derived input's
		want             string
		// lazy: the json step built no fields, FieldsFrom says it all (lazy.go); else,
		// with want "json", the fields are the message parsed.
		lazy bool
	}{
		{"json", `[json: {}]`, `{"a":1}`, nil, "json", true},
		{"json, then filters", `[json: {}, {drop: 'fields.a == 2'}, {keep: 'fields.a == 1'}, {sample: {rate: 1}}, {route: {if: 'true', to: x}}]`, `{"a":1}`, nil, "json", true},
		{"json, then a filter of all fields", `[json: {}, {keep: 'len(fields) == 1'}]`, `{"a":1}`, nil, "json", false},
		{"json, then a filter on $env", `[json: {}, {keep: '$env.fields.a == 1'}]`, `{"a":1}`, nil, "json", false},
		{"json, then a timestamp found", `[json: {}, {timestamp: {field: t}}]`, `{"a":1,"t":"2026-12-06T10:00:00Z"}`, nil, "json", true},
		{"json, then a timestamp missing: fields._error", `[json: {}, {timestamp: {field: t}}]`, `{"a":1}`, nil, "", false},
		{"json, then set", `[json: {}, {set: {fields: {b: 2}}}]`, `{"a":1}`, nil, "", false},
		{"json, then redact: a field", `[json: {}, {redact: {fields: [a]}}]`, `{"a":1}`, nil, "", false},
		{"json, then redact: nested in a list", `[json: {}, {redact: {fields: [p]}}]`, `{"a":[{"p":1}]}`, nil, "", false},
		{"json, then redact: in the fields only (an escaped key)", `[json: {}, {redact: {fields: [p]}}]`, `{"a":[{"\u0070":1}]}`, nil, "", false},
		{"json, then redact: a pattern", `[json: {}, {redact: {patterns: [email]}}]`, `{"a":"x@example.com"}`, nil, "", false},
		{"json, then redact: nothing to redact", `[json: {}, {redact: {fields: [password], patterns: [email]}}]`, `{"a":1,"b":["x"]}`, nil, "json", true},
		{"json, then redact: a name in a value only", `[json: {}, {redact: {fields: [password]}}]`, `{"a":"password reset"}`, nil, "json", false},
		{"json, then redact: a regex", `[json: {}, {redact: {patterns: ['^\d+$']}}]`, `{"a":"x"}`, nil, "json", false},
		{"not JSON: fields._error", `[json: {}]`, `not json`, nil, "", false},
		{"an empty object: no fields", `[json: {}]`, `{}`, nil, "", false},
		{"into a target", `[json: {target: p}]`, `{"a":1}`, nil, "", false},
		{"from a field", `[json: {field: raw}]`, `m`, map[string]any{"raw": `{"a":1}`}, "", false},
		{"fields there before", `[json: {}]`, `{"a":1}`, map[string]any{"b": 2}, "", false},
		{"json twice", `[json: {}, json: {}]`, `{"a":1}`, nil, "", false},
		{"set before json", `[{set: {fields: {b: 2}}}, json: {}]`, `{"a":1}`, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := buildChain(t, tc.steps)
			e := &event.Entry{Message: tc.msg, Fields: tc.fields}
			if _, err := c.Process(e); err != nil {
				t.Fatal(err)
			}
			if e.FieldsFrom != tc.want {
				t.Fatalf("FieldsFrom %q, want %q (fields %v)", e.FieldsFrom, tc.want, e.Fields)
			}
			if tc.want != "json" {
				return
			}
			if want, _ := jsonscan.Parse(tc.msg); tc.lazy != (e.Fields == nil) || !tc.lazy && !reflect.DeepEqual(e.Fields, want) {
				t.Fatalf("fields %v (want lazy: %v), want the message parsed: %v", e.Fields, tc.lazy, want)
			}
		})
	}
}
