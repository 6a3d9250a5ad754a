package pipeline_test

import (
	"strings"
	"testing"

	"github.com/logcap/logcap/modules/pipeline"
)

func TestValidate(t *testing.T) {
	cfg := parseConfig(t, `
processors:
  - name: p
    input: logs.>
    steps:
      - json: {}
      - drop: 'fields.level =='
sinks:
  - { name: h, type: http, input: logs.>, url: "http://x", bogus: 1 }
  - { name: ok, type: http, input: logs.>, url: "http://x", request: { concurrency: 8 } }
  - { name: f, type: file, input: logs.>, path: /tmp/x.log, request: { concurrency: 2 } }
`)
	errs := pipeline.Validate(cfg)
	if len(errs) != 3 {
		t.Fatalf("want 3 errors, got %d: %v", len(errs), errs)
	}
	for i, want := range []string{"test.yaml:9: processors[0].steps[1].drop: (drop) expression", "test.yaml:11: sinks[0].bogus: unknown key",
		"sinks[2]: request.concurrency: 2: the file sink takes one batch at a time"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i].Error(), want)
		}
	}
}
