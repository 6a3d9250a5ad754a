package faults

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/vlogs"
)

// TestSinksKill9IntoVictoriaLogs: logcap killed with SIGKILL in the middle of delivering
// into a real log store, then started again. Every line arrives; the store (VictoriaLogs
// ignores _id and keeps what is sent twice) holds repeats only as whole batches redelivered,
// at most the batches in flight at the kill (request.concurrency: one for loki here), each
// line at most twice; with id_field every repeat carries the ID of its first copy, so
// `uniq by (logcap_id)` leaves each line once.
func TestSinksKill9IntoVictoriaLogs(t *testing.T) {
	vlogs.Binary(t)
	const chunkBytes = 16 << 10
	total := size(100_000, 1_000_000)
	for _, tc := range []struct {
		typ, url, extra string
		concurrency     int
	}{
		{"loki", "/insert", "id_field: logcap_id", 1},
		{"http", "/insert/jsonline?_msg_field=message&_time_field=time", "id_field: logcap_id", 4},
		{"elasticsearch", "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp", "index: logs, id_field: logcap_id", 4},
	} {
		concurrency := tc.concurrency
		t.Run(tc.typ, func(t *testing.T) {
			vl := vlogs.Start(t)
			logs := t.TempDir()
			path := filepath.Join(logs, "app.log")
			n := newNode(t, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: %d, max_line_bytes: 4KiB}
sinks:
  - {name: store, type: %s, input: logs.>, url: %q, %s, batch: {max_bytes: %d}, request: {concurrency: %d}, ack_wait: 5s}
`, filepath.Join(logs, "*.log"), chunkBytes, tc.typ, vl.URL+tc.url, tc.extra, chunkBytes, concurrency))
			writeLines(t, path, 0, total)
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			poll(t, time.Minute, 5*time.Millisecond, func() error {
				if c, err := vl.TryCount("*"); err != nil || c < total/5 {
					return fmt.Errorf("%d entries in the store (%v)", c, err)
				}
				return nil
			})
			p.Kill9()
			atKill := vl.Count(t, "*")
			p2 := n.start(t)
			dumpLogsOnFailure(t, p2)
			js := n.connect(t)
			poll(t, 2*time.Minute, 100*time.Millisecond, func() error {
				if err := consumerDone(js, "LOGS", "store"); err != nil {
					return err
				}
				if c, err := vl.TryCount("*"); err != nil || c < total {
					return fmt.Errorf("%d of %d entries in the store (%v)", c, total, err)
				}
				return nil
			})
			rows := vl.Query(t, "* | fields _msg, logcap_id")
			ta := newTally()
			ids := map[string]string{} // line → its logcap_id
			for _, r := range rows {
				if err := ta.add([]byte(r["_msg"])); err != nil {
					t.Fatal(err)
				}
				if id, seen := ids[r["_msg"]]; seen && id != r["logcap_id"] {
					t.Fatalf("%q stored with logcap_id %s and %s: a repeat must carry its first copy's ID", r["_msg"], id, r["logcap_id"])
				}
				ids[r["_msg"]] = r["logcap_id"]
			}
			t.Logf("kill -9 with %d of %d entries in the store; after the restart %d rows", atKill, total, len(rows))
			if atKill >= total {
				t.Logf("the kill landed after the last write: nothing was in flight")
			}
			if lost := ta.report(t, tc.typ+" into VictoriaLogs", total); lost != 0 {
				t.Errorf("lines lost: %s", ta.missingRanges(total))
			}
			// Repeats are whole chunks redelivered, each stored twice at most, and each copy
			// carries its first copy's logcap_id (checked above). How many: the batches in
			// flight (request.concurrency; a batch is one chunk here, batch.max_bytes being
			// the chunk size). The acks the embedded server had not yet written to its
			// consumer state when the process died (it writes them at most ten times a
			// second) repeated 2–12 more chunks before the sink recorded its ack floor
			// (modules/pipeline/delivered.go).
			chunks := map[string]bool{}
			for m, id := range ids {
				var n int
				if _, err := fmt.Sscanf(m, "line %d", &n); err == nil && ta.seen[n] > 2 {
					t.Errorf("%q stored %d times", m, ta.seen[n])
				}
				if ta.seen[n] == 2 {
					chunks[id[:strings.LastIndexByte(id, '-')]] = true
				}
			}
			perChunk := chunkBytes / len("line 0 of the kill-9 burst\n")
			if ta.dups > len(chunks)*perChunk {
				t.Errorf("%d lines repeated from %d chunks: more than whole chunks", ta.dups, len(chunks))
			}
			t.Logf("%d lines repeated: %d whole chunks redelivered (request.concurrency %d)", ta.dups, len(chunks), concurrency)
			if len(chunks) > concurrency {
				t.Errorf("%d chunks redelivered by one kill -9: more than the %d batch(es) in flight", len(chunks), concurrency)
			}
			// LOGS itself holds every line once: the repeats are the sink's.
			readAll(t, js, "logs.file.>", total, time.Minute).exactlyOnce(t, "LOGS", total)
			if u := len(ids); u != total {
				t.Errorf("%d distinct lines by logcap_id, want %d", u, total)
			}
		})
	}
}
