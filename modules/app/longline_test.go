package app_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
)

// A 5 MB line, split at max_line_bytes (1 MiB) into parts that cannot share one chunk:
// the raw file sink writes it back as one line, and the json sink marks the parts that
// continue ("continued": true). Before, the raw sink wrote five lines of ≤ 1 MiB and
// split_lines_total stayed 0.
func TestLongLineRejoinedByRawSinks(t *testing.T) {
	dir := t.TempDir()
	in, raw, js := filepath.Join(dir, "in", "app.log"), filepath.Join(dir, "raw.log"), filepath.Join(dir, "json.log")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5_000_000)
	if err := os.WriteFile(in, []byte("start\n"+long+"\nend\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("longline.yaml", []byte(fmt.Sprintf(`
node: test
data_dir: %s
nats: {embedded: {listen: none}}
admin: {listen: none}
sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
sinks:
  - {name: raw, type: file, input: logs.>, path: %q, format: raw}
  - {name: js, type: file, input: logs.>, path: %q, format: json}
`, filepath.Join(dir, "data"), in, raw, js)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stopWithin(t, a, 10*time.Second)
	var lines []string
	natstest.Eventually(t, time.Minute, func() error {
		lines = readLines(t, raw)
		if len(lines) < 3 {
			return fmt.Errorf("%d lines in %s", len(lines), raw)
		}
		return nil
	})
	if len(lines) != 3 || lines[0] != "start" || lines[1] != long || lines[2] != "end" {
		t.Fatalf("raw sink: %d lines of lengths %v, want start, the 5,000,000-byte line, end", len(lines), lengths(lines))
	}
	natstest.Eventually(t, time.Minute, func() error {
		if n := len(readLines(t, js)); n < 7 {
			return fmt.Errorf("%d lines in %s", n, js)
		}
		return nil
	})
	marked := 0
	for _, l := range readLines(t, js) {
		if strings.Contains(l, `"continued":true`) {
			marked++
		}
	}
	if marked != 4 { // five parts: the first four continue
		t.Errorf("json sink: %d entries marked continued, want 4", marked)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func lengths(ls []string) []int {
	out := make([]int, len(ls))
	for i, l := range ls {
		out[i] = len(l)
	}
	return out
}
