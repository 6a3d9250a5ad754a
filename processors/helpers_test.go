package processors

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
)

// parseSteps reads a `steps:` list the way the config loader does.
func parseSteps(t testing.TB, src string) []config.Options {
	t.Helper()
	var doc struct {
		Steps []config.Options `yaml:"steps"`
	}
	if err := yaml.Unmarshal([]byte("steps:\n"+src), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, src)
	}
	return doc.Steps
}

func buildChain(t testing.TB, src string) *Chain {
	t.Helper()
	c, err := BuildChain(parseSteps(t, src))
	if err != nil {
		t.Fatalf("BuildChain: %v", err)
	}
	return c
}

// newStep builds one step from a YAML item such as `json: {field: x}`.
func newStep(t testing.TB, item string) Step {
	t.Helper()
	s, err := buildStep(t, item)
	if err != nil {
		t.Fatalf("build %s: %v", item, err)
	}
	return s
}

func buildStep(t testing.TB, item string) (Step, error) {
	t.Helper()
	opts := parseSteps(t, "  - "+item+"\n")
	if len(opts) != 1 {
		t.Fatalf("want one step in %q", item)
	}
	typ, o, err := opts[0].Step()
	if err != nil {
		return nil, err
	}
	return NewStep(typ, o)
}

// fieldsJSON renders fields canonically (sorted keys) for comparisons.
func fieldsJSON(t testing.TB, f map[string]any) string {
	t.Helper()
	if f == nil {
		return "null"
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("marshal fields: %v", err)
	}
	return string(b)
}

// outcome classifies a step result as the chain counts it.
func outcome(err error) string {
	var tol *Tolerated
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNoMatch):
		return "unmatched"
	case errors.As(err, &tol):
		return "tolerated"
	}
	return "error"
}

// stepCase is one row of a step table: an entry in, and what must come out.
type stepCase struct {
	name    string
	msg     string
	fields  map[string]any
	keep    bool
	outcome string // ok, unmatched, tolerated, error
	// want is the JSON of the fields after the step; "" skips the check. errContains
	// checks fields._error.
	want        string
	wantMsg     *string
	errContains string
}

func runStepCases(t *testing.T, s Step, cases []stepCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &event.Entry{Message: tc.msg, Fields: tc.fields}
			keep, err := s.Apply(e)
			if keep != tc.keep {
				t.Errorf("keep = %v, want %v", keep, tc.keep)
			}
			if got := outcome(err); got != tc.outcome {
				t.Errorf("outcome = %s (%v), want %s", got, err, tc.outcome)
			}
			if tc.errContains != "" {
				got, _ := e.Fields[errorField].(string)
				if !strings.Contains(got, tc.errContains) {
					t.Errorf("fields._error = %q, want it to contain %q", got, tc.errContains)
				}
			} else if v, ok := e.Fields[errorField]; ok && tc.outcome != "tolerated" {
				t.Errorf("unexpected fields._error = %v", v)
			}
			if tc.want != "" {
				if got := fieldsJSON(t, e.Fields); got != tc.want {
					t.Errorf("fields = %s\nwant     %s", got, tc.want)
				}
			}
			if tc.wantMsg != nil && e.Message != *tc.wantMsg {
				t.Errorf("message = %q, want %q", e.Message, *tc.wantMsg)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
