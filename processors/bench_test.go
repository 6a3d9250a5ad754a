package processors

import (
	"testing"
	"time"

	"github.com/logcap/logcap/event"
)

// benchLine is a typical 200-byte structured log line.
const benchLine = `{"time":"2026-11-27T13:18:38.123Z","level":"info","host":"web-1","msg":"request done","method":"GET","path":"/api/v1/items/42","status":200,"dur_ms":12.5,"user":"bob@corp.example","password":"hunter2"}`

func benchEntry(b *testing.B) event.Entry {
	e := event.Entry{Message: benchLine}
	if _, err := newStep(b, "json: {}").Apply(&e); err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkSteps(b *testing.B) {
	if len(benchLine) < 190 || len(benchLine) > 210 {
		b.Fatalf("bench line is %d bytes", len(benchLine))
	}
	logfmtLine := `time=2026-11-27T13:18:38.123Z level=info msg="request done" method=GET path=/api/v1/items/42 status=200 dur_ms=12.5 user=bob@corp.example password=hunter2 x=yz`
	cases := []struct {
		name, step string
		raw        bool   // start from the raw line (parsers) rather than the parsed entry
		msg        string // raw message, default benchLine
	}{
		{"json", "json: {}", true, ""},
		{"logfmt", "logfmt: {}", true, logfmtLine},
		{"regex", `regex: {pattern: '"method":"(?P<method>[A-Z]+)","path":"(?P<path>[^"]*)"'}`, true, ""},
		{"timestamp", "timestamp: {field: time}", false, ""},
		{"set", "set: {fields: {env: prod, team.name: core}}", false, ""},
		{"rename", "rename: {fields: {msg: message_text}}", false, ""},
		{"remove", "remove: {fields: [password]}", false, ""},
		{"drop", `drop: 'fields.level == "debug"'`, false, ""},
		{"keep", `keep: 'fields.status >= 200 && kind != "x"'`, false, ""},
		{"route", `route: {if: 'fields.status >= 500', to: errors}`, false, ""},
		{"sample", "sample: {rate: 10}", false, ""},
		{"sample_key", "sample: {rate: 10, key: 'fields.path'}", false, ""},
		{"redact_fields", "redact: {fields: [password]}", false, ""},
		{"redact_all", "redact: {fields: [password], patterns: [email, credit_card, bearer_token]}", false, ""},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := newStep(b, tc.step)
			parsed := benchEntry(b)
			msg := tc.msg
			if msg == "" {
				msg = benchLine
			}
			e := new(event.Entry) // reused: the benchmark measures the step, not the entry
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if tc.raw {
					*e = event.Entry{Message: msg}
				} else {
					*e = parsed
					parsed.Fields["password"] = "hunter2" // redact and remove change it
					if _, ok := parsed.Fields["msg"]; !ok {
						parsed.Fields["msg"] = "request done" // rename moves it
					}
				}
				if _, err := s.Apply(e); err != nil && outcome(err) == "error" {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChain is a whole entry through json → drop → redact, as the pipeline runs it.
func BenchmarkChain(b *testing.B) {
	c := buildChain(b, `
  - json: {}
  - drop: 'fields.level == "debug"'
  - redact: {fields: [password], patterns: [email, credit_card, bearer_token]}
`)
	e := new(event.Entry)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		*e = event.Entry{Time: time.Time{}, Message: benchLine}
		if keep, err := c.Process(e); !keep || err != nil {
			b.Fatal(keep, err)
		}
	}
}

// line8 is an all-JSON line of 8 fields (~215 B): the all-JSON input.
const line8 = `{"seq":"0000004242","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":331,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`

// BenchmarkJSON8 is the json step on an 8-field object; allocs/op is allocations per entry
// (budget: ≤ 10).
func BenchmarkJSON8(b *testing.B) {
	s := newStep(b, "json: {}")
	e := new(event.Entry)
	b.ReportAllocs()
	b.SetBytes(int64(len(line8)))
	for b.Loop() {
		*e = event.Entry{Message: line8}
		if _, err := s.Apply(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSON8Last is a chain of one json step: nothing after it reads the fields, so
// it only checks the message is an object and stores the reference (event.FieldsFrom).
func BenchmarkJSON8Last(b *testing.B) {
	c := buildChain(b, `[json: {}]`)
	e := new(event.Entry)
	b.ReportAllocs()
	b.SetBytes(int64(len(line8)))
	for b.Loop() {
		*e = event.Entry{Message: line8}
		if _, err := c.Process(e); err != nil || e.FieldsFrom != event.FieldsFromJSON || e.Fields != nil {
			b.Fatal(err, e.FieldsFrom, e.Fields)
		}
	}
}

// BenchmarkChain8 is json → drop → redact (the chain) on an 8-field object.
func BenchmarkChain8(b *testing.B) {
	c := buildChain(b, `
  - json: {}
  - drop: 'fields.level == "debug"'
  - redact: {fields: [password]}
`)
	e := new(event.Entry)
	b.ReportAllocs()
	b.SetBytes(int64(len(line8)))
	for b.Loop() {
		*e = event.Entry{Message: line8}
		if keep, err := c.Process(e); !keep || err != nil {
			b.Fatal(keep, err)
		}
	}
}
