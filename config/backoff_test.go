package config

import (
	"strings"
	"testing"
	"time"
)

// TestSinkBackoff: a sink's `backoff:` is read (it used to be skipped and accepted in
// silence, whatever it held), checked, and printed by check.
func TestSinkBackoff(t *testing.T) {
	for _, tc := range []struct {
		name, backoff, want string
		initial, max        time.Duration
	}{
		{"both", "{initial: 100ms, max: 2s}", "", 100 * time.Millisecond, 2 * time.Second},
		{"initial only", "{initial: 1s}", "", time.Second, 0},
		{"typo", "{initail: 1s}", `t.yaml:2: sinks[0].backoff.initail: unknown key (did you mean initial?)`, 0, 0},
		{"not a mapping", "5s", `t.yaml:2: sinks[0].backoff: want a mapping, got string "5s"`, 0, 0},
		{"max below initial", "{initial: 2s, max: 1s}", `t.yaml:2: sinks[0].backoff.max: 1s is less than initial (2s)`, 0, 0},
		{"negative", "{initial: -1s}", `t.yaml:2: sinks[0].backoff.initial: invalid duration "-1s": negative`, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "sinks:\n  - {name: s, type: stdout, input: logs.>, backoff: " + tc.backoff + "}\n"
			c, err := Parse("t.yaml", []byte(y))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Parse(%q):\n got %q\nwant %q", y, got, tc.want)
			}
			if err != nil {
				return
			}
			if b := c.Sinks[0].Backoff; b.Initial.D() != tc.initial || b.Max.D() != tc.max {
				t.Errorf("backoff %+v", b)
			}
			out, err := c.Redacted()
			if err != nil || !strings.Contains(string(out), "backoff:") {
				t.Errorf("check output lost the backoff (%v):\n%s", err, out)
			}
		})
	}
}
