package faults

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// File source → LOGS → file sink, no processor. kill -9 of logcap while the sink is
// writing, then restart: the output file holds every line exactly once, in order. The
// sink's position file (docs/sinks-local.md) truncates what a batch wrote but never
// committed, and skips what a redelivered batch already wrote.
func TestFileSinkKill9(t *testing.T) {
	total := size(300_000, 2_000_000)
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	out := filepath.Join(t.TempDir(), "out", "archive.log")
	// Small chunks and batches: many commits of the sink, so the kill lands between two of
	// them or inside one rather than before the first or after the last.
	n := newNode(t, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}
sinks:
  - {name: archive, type: file, input: logs.>, path: %q, format: raw, batch: {max_entries: 500}, ack_wait: 5s}
`, filepath.Join(logs, "*.log"), out))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	writeLines(t, path, 0, total/2)
	poll(t, time.Minute, 5*time.Millisecond, func() error {
		if c := countLines(t, out); c < total/20 {
			return fmt.Errorf("%d lines in the sink's output", c)
		}
		return nil
	})
	atKill := countLines(t, out)
	p.Kill9()
	writeLines(t, path, total/2, total) // the rest arrives while logcap is dead

	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)
	if err := waitFor(2*time.Minute, 100*time.Millisecond, func() error {
		if c := countLines(t, out); c < total {
			return fmt.Errorf("%d of %d lines in the sink's output", c, total)
		}
		return consumerDone(js, "LOGS", "archive")
	}); err != nil {
		t.Error(err)
		readAll(t, js, "logs.file.>", total, time.Minute).report(t, "LOGS", total)
		t.Log(consumerDone(js, "LOGS", "archive"))
	}
	ta := readFileTally(t, out)
	t.Logf("kill -9 with %d lines in the sink's output (%.0f%%)", atKill, 100*float64(atKill)/float64(total))
	ta.exactlyOnce(t, "file sink output", total)
	readAll(t, js, "logs.file.>", total, time.Minute).exactlyOnce(t, "LOGS", total)
}
