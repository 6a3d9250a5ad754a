package processors

import (
	"testing"

	"github.com/logcap/logcap/event"
)

func TestSetStep(t *testing.T) {
	s := newStep(t, `set: {fields: {env: prod, n: 3, big: 18446744073709551615, ok: true, team.name: core, obj: {a: [1, x]}, team.id: 7}}`)
	base := `"big":18446744073709552000,"env":"prod","n":3,"obj":{"a":[1,"x"]},"ok":true`
	runStepCases(t, s, []stepCase{
		{name: "empty entry", keep: true, outcome: "ok", want: `{` + base + `,"team":{"id":7,"name":"core"}}`},
		{name: "replaces a scalar on the path", fields: map[string]any{"team": "x"}, keep: true, outcome: "ok",
			want: `{` + base + `,"team":{"id":7,"name":"core"}}`},
		{name: "keeps siblings", fields: map[string]any{"team": map[string]any{"size": 4}, "z": 1}, keep: true, outcome: "ok",
			want: `{` + base + `,"team":{"id":7,"name":"core","size":4},"z":1}`},
		{name: "overwrites", fields: map[string]any{"env": "dev"}, keep: true, outcome: "ok",
			want: `{` + base + `,"team":{"id":7,"name":"core"}}`},
		{name: "invalid UTF-8 message untouched", msg: "\xff", keep: true, outcome: "ok", wantMsg: ptr("\xff")},
		{name: "nil-valued field replaced", fields: map[string]any{"team": nil}, keep: true, outcome: "ok",
			want: `{` + base + `,"team":{"id":7,"name":"core"}}`},
	})
	// Each entry gets its own copy of an object value.
	e1, e2 := &event.Entry{}, &event.Entry{}
	s.Apply(e1)
	s.Apply(e2)
	e1.Fields["obj"].(map[string]any)["a"] = "changed"
	if got := fieldsJSON(t, e2.Fields["obj"].(map[string]any)); got != `{"a":[1,"x"]}` {
		t.Fatalf("second entry's object changed with the first: %s", got)
	}
	if _, ok := e2.Fields["n"].(int64); !ok {
		t.Fatalf("n is %T, want int64 (like JSON-decoded integers)", e2.Fields["n"])
	}
}

func TestRenameStep(t *testing.T) {
	s := newStep(t, `rename: {fields: {lvl: level, level: severity, req.status: http.status, gone: there}}`)
	runStepCases(t, s, []stepCase{
		{name: "in the order written", fields: map[string]any{"lvl": "warn"}, keep: true, outcome: "ok", want: `{"severity":"warn"}`},
		{name: "nested to nested", fields: map[string]any{"req": map[string]any{"status": 200, "x": 1}}, keep: true, outcome: "ok",
			want: `{"http":{"status":200},"req":{"x":1}}`},
		{name: "missing is a no-op", fields: map[string]any{"a": 1}, keep: true, outcome: "ok", want: `{"a":1}`},
		{name: "nil fields", keep: true, outcome: "ok", want: `null`},
		{name: "target replaced", fields: map[string]any{"level": "x", "severity": "old"}, keep: true, outcome: "ok", want: `{"severity":"x"}`},
		{name: "path through a scalar", fields: map[string]any{"req": "flat"}, keep: true, outcome: "ok", want: `{"req":"flat"}`},
	})
}

func TestRemoveStep(t *testing.T) {
	s := newStep(t, `remove: {fields: [debug, http.headers, a.b.c]}`)
	runStepCases(t, s, []stepCase{
		{name: "top level", fields: map[string]any{"debug": true, "k": 1}, keep: true, outcome: "ok", want: `{"k":1}`},
		{name: "nested", fields: map[string]any{"http": map[string]any{"headers": map[string]any{"x": 1}, "status": 200}}, keep: true, outcome: "ok",
			want: `{"http":{"status":200}}`},
		{name: "deep", fields: map[string]any{"a": map[string]any{"b": map[string]any{"c": 1, "d": 2}}}, keep: true, outcome: "ok",
			want: `{"a":{"b":{"d":2}}}`},
		{name: "missing", fields: map[string]any{"k": 1}, keep: true, outcome: "ok", want: `{"k":1}`},
		{name: "nil fields", keep: true, outcome: "ok", want: `null`},
		{name: "path through a scalar", fields: map[string]any{"http": 5}, keep: true, outcome: "ok", want: `{"http":5}`},
	})
}
