package processors

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
)

func TestDropKeep(t *testing.T) {
	cases := []struct {
		name, expr string
		e          event.Entry
		want       bool // the expression's value
		fails      bool // a run-time error: counts as false
	}{
		{"field equals", `fields.level == "debug"`, event.Entry{Fields: map[string]any{"level": "debug"}}, true, false},
		{"missing field is nil", `fields.level == "debug"`, event.Entry{}, false, false},
		{"int64 against int literal", `fields.status >= 500`, event.Entry{Fields: map[string]any{"status": int64(503)}}, true, false},
		{"float64 against int literal", `fields.status >= 500`, event.Entry{Fields: map[string]any{"status": 404.0}}, false, false},
		{"wrong type at run time", `fields.status >= 500`, event.Entry{Fields: map[string]any{"status": "503"}}, false, true},
		{"nested with ?.", `fields.http?.status == 200`, event.Entry{}, false, false},
		{"nested", `fields.http.status == 200`, event.Entry{Fields: map[string]any{"http": map[string]any{"status": int64(200)}}}, true, false},
		{"entry attributes", `kind == "docker" && stream == "stderr" && host == "h" && source startsWith "ng"`,
			event.Entry{Kind: "docker", Stream: "stderr", Host: "h", Source: "nginx"}, true, false},
		{"message regex", `message matches "(?i)healthz"`, event.Entry{Message: "GET /HEALTHZ"}, true, false},
		{"time", `time.Year() == 2026`, event.Entry{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, true, false},
		{"invalid UTF-8 message", `message contains "x"`, event.Entry{Message: "\xffx"}, true, false},
		{"parse error marker", `fields._error != nil`, event.Entry{Fields: map[string]any{"_error": "json: x"}}, true, false},
		{"age", `now() - time > duration("1h")`, event.Entry{Time: time.Now().Add(-2 * time.Hour)}, true, false},
		{"huge message", `len(message) > 1000000`, event.Entry{Message: strings.Repeat("a", 1<<20)}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, typ := range []string{"drop", "keep"} {
				s := newStep(t, fmt.Sprintf("%s: '%s'", typ, tc.expr))
				e := tc.e
				keep, err := s.Apply(&e)
				wantKeep := tc.want != (typ == "drop")
				if keep != wantKeep {
					t.Errorf("%s: keep = %v, want %v", typ, keep, wantKeep)
				}
				if got, want := outcome(err), map[bool]string{false: "ok", true: "tolerated"}[tc.fails]; got != want {
					t.Errorf("%s: outcome %s (%v), want %s", typ, got, err, want)
				}
			}
		})
	}
}

func TestRoute(t *testing.T) {
	s := newStep(t, `route: {if: 'fields.level in ["error", "fatal"]', to: errors.app}`)
	for _, tc := range []struct {
		name    string
		fields  map[string]any
		route   string
		outcome string
	}{
		{"error", map[string]any{"level": "error"}, "errors.app", "ok"},
		{"fatal", map[string]any{"level": "fatal"}, "errors.app", "ok"},
		{"info", map[string]any{"level": "info"}, "", "ok"},
		{"no fields", nil, "", "ok"},
		// expr turns `in [consts]` into a typed set lookup: another type is a run-time error.
		{"wrong type", map[string]any{"level": 3}, "", "tolerated"},
		{"nested object", map[string]any{"level": map[string]any{"x": 1}}, "", "tolerated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &event.Entry{Fields: tc.fields}
			keep, err := s.Apply(e)
			if !keep || outcome(err) != tc.outcome || e.Route != tc.route {
				t.Fatalf("keep=%v err=%v route=%q, want true %s %q", keep, err, e.Route, tc.outcome, tc.route)
			}
		})
	}
	e := &event.Entry{Fields: map[string]any{"n": "x"}}
	if keep, err := newStep(t, `route: {if: 'fields.n > 1', to: big}`).Apply(e); !keep || outcome(err) != "tolerated" || e.Route != "" {
		t.Fatalf("run-time error: keep=%v err=%v route=%q", keep, err, e.Route)
	}
}

func TestSample(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		step string
		rate int
	}{{"sample: {rate: 10}", 10}, {"sample: {rate: 3, key: 'fields.id'}", 3}, {"sample: {rate: 1}", 1}, {"sample: {rate: 100, key: 'source + message'}", 100}} {
		t.Run(tc.step, func(t *testing.T) {
			s := newStep(t, tc.step)
			other := newStep(t, tc.step) // a rebuild: a fresh step must decide the same
			kept := 0
			for i := range n {
				e := event.Entry{Source: "s", Message: fmt.Sprintf("line %d", i), Fields: map[string]any{"id": int64(i)}}
				k1, err := s.Apply(&e)
				if err != nil {
					t.Fatal(err)
				}
				k2, _ := other.Apply(&e)
				k3, _ := s.Apply(&e)
				if k1 != k2 || k1 != k3 {
					t.Fatalf("entry %d: decisions differ: %v %v %v", i, k1, k2, k3)
				}
				if k1 {
					kept++
				}
			}
			want := n / tc.rate
			if kept < want*8/10 || kept > want*12/10 {
				t.Fatalf("kept %d of %d, want about %d", kept, n, want)
			}
		})
	}
	// Fixed decisions: the hash is part of the contract (a rebuild with a newer logcap
	// must reproduce the stream), so a change of hash must fail here.
	s := newStep(t, "sample: {rate: 2}")
	for _, m := range []string{"", "a", "b", "c", "hello", "\xff", "line 1", "line 2"} {
		k, _ := s.Apply(&event.Entry{Message: m})
		if want := fnv1a(m)%2 == 0; k != want {
			t.Fatalf("%q: %v, want %v", m, k, want)
		}
	}
	if fnv1a("a") != 0xaf63dc4c8601ec8c || fnv1a("") != 0xcbf29ce484222325 {
		t.Fatalf("fnv1a is not FNV-1a 64: %x %x", fnv1a("a"), fnv1a(""))
	}
}
