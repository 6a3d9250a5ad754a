package config

import "testing"

// TestStepShapes: config.Validate accepts the step shapes processors.BuildChain documents
// and builds (a bare `- json` for a step without options), and rejects the others.
func TestStepShapes(t *testing.T) {
	for _, tc := range []struct{ name, steps, want string }{
		{"mapping", "[json: {}]", ""},
		{"bare name", "\n      - json\n      - drop: 'true'", ""},
		{"empty mapping", "[{}]", "t.yaml:4: processors[0].steps[0]: empty step: want a one-key mapping like `json: {}`"},
		{"two keys", "\n      - {json: {}, drop: x}", "t.yaml:5: processors[0].steps[0]: one step per list item, got 2 keys (json, drop): start each with its own `- `"},
		{"number", "[42]", "t.yaml:4: processors[0].steps[0]: want a one-key mapping like `json: {}` or a step name, got 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "processors:\n  - name: p\n    input: logs.>\n    steps: " + tc.steps + "\n"
			_, err := Parse("t.yaml", []byte(y))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Parse(%q):\n got %q\nwant %q", y, got, tc.want)
			}
		})
	}
}
