package processors

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/logcap/logcap/event"
)

func TestJSONStep(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	runStepCases(t, newStep(t, "json: {}"), []stepCase{
		{name: "object", msg: `{"level":"info","n":3,"f":1.5,"ok":true,"z":null}`, keep: true, outcome: "ok",
			want: `{"f":1.5,"level":"info","n":3,"ok":true,"z":null}`},
		{name: "merges over existing fields", msg: `{"a":2}`, fields: map[string]any{"a": 1, "b": 1}, keep: true, outcome: "ok",
			want: `{"a":2,"b":1}`},
		{name: "nested", msg: ` {"http":{"status":503,"tags":["a",{"b":1}]}} `, keep: true, outcome: "ok",
			want: `{"http":{"status":503,"tags":["a",{"b":1}]}}`},
		{name: "int beyond int64 keeps its digits", msg: `{"id":123456789012345678901234567890,"m":-9223372036854775808}`, keep: true, outcome: "ok",
			want: `{"id":123456789012345678901234567890,"m":-9223372036854775808}`},
		{name: "empty message", msg: "", keep: true, outcome: "tolerated", errContains: "json: empty input"},
		{name: "array", msg: `[1,2]`, keep: true, outcome: "tolerated", errContains: "not an object (starts with an array)"},
		{name: "string", msg: `"str"`, keep: true, outcome: "tolerated", errContains: "starts with a string"},
		{name: "truncated", msg: `{"a":`, keep: true, outcome: "tolerated", errContains: "json: "},
		{name: "trailing data", msg: `{"a":1} {"b":2}`, keep: true, outcome: "tolerated", errContains: "data after the object"},
		{name: "plain text", msg: `GET /index.html 200`, fields: map[string]any{"keep": "me"}, keep: true, outcome: "tolerated",
			errContains: "json: not an object"},
		{name: "invalid UTF-8 is replaced, not fatal", msg: "{\"a\":\"\xff\xfe\"}", keep: true, outcome: "ok",
			want: `{"a":"` + "\ufffd\ufffd" + `"}`},
		{name: "huge value", msg: `{"big":"` + huge + `"}`, keep: true, outcome: "ok"},
	})
}

func TestJSONStepFieldAndTarget(t *testing.T) {
	s := newStep(t, "json: {field: raw.body, target: parsed.body}")
	runStepCases(t, s, []stepCase{
		{name: "nested source and target", fields: map[string]any{"raw": map[string]any{"body": `{"a":1}`}}, keep: true, outcome: "ok",
			want: `{"parsed":{"body":{"a":1}},"raw":{"body":"{\"a\":1}"}}`},
		{name: "missing field is unmatched", msg: `{"a":1}`, keep: true, outcome: "unmatched", want: "null"},
		{name: "non-string field", fields: map[string]any{"raw": map[string]any{"body": 3}}, keep: true, outcome: "tolerated",
			errContains: `field "raw.body" is not a string`},
	})
	e := &event.Entry{Message: `{"n":1}`}
	if _, err := newStep(t, "json: {target: j}").Apply(e); err != nil {
		t.Fatal(err)
	}
	if got := fieldsJSON(t, e.Fields); got != `{"j":{"n":1}}` {
		t.Fatalf("fields = %s", got)
	}
	if n, ok := e.Fields["j"].(map[string]any)["n"].(int64); !ok || n != 1 {
		t.Fatalf("integers must decode to int64, got %T", e.Fields["j"].(map[string]any)["n"])
	}
}

// FuzzJSONStep: never panics; keeps every entry; on success every top-level key of the
// object is in Fields, on failure fields._error starts with "json: ".
func FuzzJSONStep(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, `"str"`, ``, `{"a":{"b":[1,2,{"c":null}]}}`,
		`{"n":1e400}`, `{"n":123456789012345678901234567890}`, "{\"\xff\":1}", `{"a":1}x`} {
		f.Add(s)
	}
	s := newStep(f, "json: {}")
	f.Fuzz(func(t *testing.T, msg string) {
		e := &event.Entry{Message: msg}
		keep, err := s.Apply(e)
		if !keep {
			t.Fatal("json dropped an entry")
		}
		if err != nil {
			if outcome(err) != "tolerated" {
				t.Fatalf("err %v is not tolerated", err)
			}
			if got, _ := e.Fields[errorField].(string); !strings.HasPrefix(got, "json: ") {
				t.Fatalf("fields._error = %q", got)
			}
			return
		}
		if !json.Valid([]byte(msg)) {
			t.Fatalf("step accepted invalid JSON %q", msg)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(msg), &m); err != nil {
			t.Fatalf("step accepted %q that is not an object: %v", msg, err)
		}
		for k := range m {
			if _, ok := e.Fields[k]; !ok {
				t.Fatalf("key %q lost", k)
			}
		}
		if _, err := json.Marshal(e.Fields); err != nil {
			t.Fatalf("fields do not encode back: %v", err)
		}
	})
}
