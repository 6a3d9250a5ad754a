package processors

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
)

func TestTimestampStep(t *testing.T) {
	want := func(s string) time.Time {
		t.Helper()
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	cases := []struct {
		name, step string
		fields     map[string]any
		msg        string
		want       time.Time // zero: the step must fail and leave Time alone
		errLike    string
	}{
		{"rfc3339", "timestamp: {}", map[string]any{"ts": "2026-11-27T13:18:38Z"}, "", want("2026-11-27T13:18:38Z"), ""},
		{"rfc3339 nano with zone", "timestamp: {field: time}", map[string]any{"time": "2026-11-27T14:18:38.123456789+01:00"}, "",
			want("2026-11-27T13:18:38.123456789Z"), ""},
		{"unix int64", "timestamp: {layout: unix}", map[string]any{"ts": int64(1700000000)}, "", time.Unix(1700000000, 0), ""},
		{"unix fraction string", "timestamp: {layout: unix}", map[string]any{"ts": "1700000000.25"}, "", time.Unix(1700000000, 250000000), ""},
		{"unix_ms float64", "timestamp: {layout: unix_ms}", map[string]any{"ts": float64(1700000000123)}, "", time.UnixMilli(1700000000123), ""},
		{"unix_ns json.Number", "timestamp: {layout: unix_ns}", map[string]any{"ts": json.Number("1700000000000000001")}, "",
			time.Unix(1700000000, 1), ""},
		{"go layout in a timezone", "timestamp: {field: t.at, layout: '2006-01-02 15:04:05', timezone: Europe/Paris}",
			map[string]any{"t": map[string]any{"at": "2026-07-01 12:00:00"}}, "", want("2026-07-01T10:00:00Z"), ""},
		{"from the message", "timestamp: {field: message}", nil, "2026-01-02T03:04:05Z", want("2026-01-02T03:04:05Z"), ""},
		{"missing field", "timestamp: {}", map[string]any{"x": 1}, "", time.Time{}, `timestamp: field "ts" missing`},
		{"garbage", "timestamp: {}", map[string]any{"ts": "yesterday"}, "", time.Time{}, "timestamp: parsing time"},
		{"empty", "timestamp: {}", map[string]any{"ts": ""}, "", time.Time{}, "timestamp: parsing time"},
		{"number for a text layout", "timestamp: {}", map[string]any{"ts": int64(5)}, "", time.Time{}, "want a string"},
		{"ms read as seconds", "timestamp: {layout: unix}", map[string]any{"ts": int64(1700000000123000)}, "", time.Time{}, "wrong unit"},
		{"too big for int64", "timestamp: {layout: unix_ns}", map[string]any{"ts": json.Number("123456789012345678901234567890")}, "", time.Time{}, "out of range"},
		{"NaN", "timestamp: {layout: unix}", map[string]any{"ts": "NaN"}, "", time.Time{}, "not a finite number"},
		{"huge string", "timestamp: {}", map[string]any{"ts": strings.Repeat("9", 1<<16)}, "", time.Time{}, "timestamp: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &event.Entry{Message: tc.msg, Fields: tc.fields}
			keep, err := newStep(t, tc.step).Apply(e)
			if !keep {
				t.Fatal("dropped")
			}
			if tc.errLike == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !e.Time.Equal(tc.want) {
					t.Fatalf("time = %v, want %v", e.Time, tc.want)
				}
				return
			}
			if outcome(err) != "tolerated" {
				t.Fatalf("outcome %s (%v), want tolerated", outcome(err), err)
			}
			if !e.Time.IsZero() {
				t.Fatalf("time set to %v on failure", e.Time)
			}
			if got, _ := e.Fields[errorField].(string); !strings.Contains(got, tc.errLike) {
				t.Fatalf("fields._error = %q, want %q", got, tc.errLike)
			}
		})
	}
}
