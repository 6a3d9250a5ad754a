package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/streams"
)

// A store end lost to a crash (what sync_interval leaves to a power loss, reproduced by
// cutting the last block of LOGS in half after a kill -9): the sources refill LOGS from
// their positions and the server re-uses the lost sequence numbers. The file sink, whose
// committed position is past them, must notice that its stream went backwards and write
// them, not skip them as already written (it skipped 3,700 lines of 300,000).
func TestFileSinkDamagedStoreEnd(t *testing.T) {
	total := size(200_000, 1_000_000)
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	out := filepath.Join(t.TempDir(), "out", "archive.log")
	n := newNode(t, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 64KiB, max_line_bytes: 4KiB}
sinks:
  - {name: archive, type: file, input: logs.>, path: %q, format: raw, batch: {max_entries: 500}, ack_wait: 5s}
`, filepath.Join(logs, "*.log"), out))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	// The first half in small appends, each written by the sink before the next: small
	// chunks, which the refill after the cut reads back as fewer, fuller ones, so the
	// sequence numbers it re-uses hold other lines than before.
	const step = 2000
	for from := 0; from < total/2; from += step {
		writeLines(t, path, from, from+step)
		poll(t, time.Minute, 5*time.Millisecond, func() error {
			if c := countLines(t, out); c < from+step {
				return fmt.Errorf("%d lines in the sink's output", c)
			}
			return nil
		})
	}
	// The sink has written everything stored: its position is the stream's end, so the
	// cut takes lines it has written.
	poll(t, time.Minute, 10*time.Millisecond, func() error { return consumerDone(js, "LOGS", "archive") })
	// And the positions KV has recorded that end (it is written at most once a second): the
	// cut then takes chunks the KV counts as published, which the source must notice.
	poll(t, time.Minute, 10*time.Millisecond, func() error { return positionsAtStreamEnd(js, "LOGS") })
	p.Kill9()
	cut := cutLastBlock(t, filepath.Join(n.dir, "data", "jetstream"), "LOGS")
	writeLines(t, path, total/2, total)

	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)
	if err := waitFor(2*time.Minute, 100*time.Millisecond, func() error {
		if err := consumerDone(js, "LOGS", "archive"); err != nil {
			return err
		}
		if ta := readFileTally(t, out); ta.missing(total) > 0 {
			return fmt.Errorf("%d of %d lines missing from the sink's output", ta.missing(total), total)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	ta := readFileTally(t, out)
	// Lines the sink wrote from messages the store then lost come again from the refill
	// (at-least-once): the sink cannot tell them from new ones, since chunk boundaries and
	// so message ids differ.
	t.Logf("cut %s: %d lines in the output, %d repeated", cut, ta.total, ta.dups)
	if m := ta.missing(total); m > 0 {
		t.Errorf("file sink output: %d of %d lines missing: %s", m, total, ta.missingRanges(total))
	}
	// Both sides say what they found: the source that its KV saw chunks LOGS lost, the sink
	// that its position names a sequence number re-used by another message.
	for _, said := range []string{"file monitor: the stream went backwards", "the input stream went backwards under the sink's position"} {
		if !p2.WaitLog(said, 10*time.Second) {
			t.Errorf("the restarted logcap never said %q", said)
		}
	}
	readAll(t, js, "logs.file.>", total, time.Minute).exactlyOnce(t, "LOGS", total)
}

// positionsAtStreamEnd reports nil once every file position of node faults records the
// last sequence number of stream (a test with one file source and one file).
func positionsAtStreamEnd(js jetstream.JetStream, stream string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.CachedInfo().State.LastSeq
	kv, err := js.KeyValue(ctx, streams.PositionsBucket)
	if err != nil {
		return fmt.Errorf("kv %s: %w", streams.PositionsBucket, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, streams.PositionsOf("faults"))
	if err != nil {
		return fmt.Errorf("kv %s: %w", streams.PositionsBucket, err)
	}
	n := 0
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("kv %s: %w", key, err)
		}
		r, err := streams.DecodeFilePosition(e.Value())
		if err != nil {
			return fmt.Errorf("kv %s: %w", key, err)
		}
		if r.Seq != last {
			return fmt.Errorf("position %s records sequence %d, the stream ends at %d", key, r.Seq, last)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no file position recorded")
	}
	return nil
}

// cutLastBlock truncates the newest message block of stream to half its size, as a power
// loss leaves a block whose tail was never written back.
func cutLastBlock(t *testing.T, storeDir, stream string) string {
	t.Helper()
	blks, err := filepath.Glob(filepath.Join(storeDir, "*", "streams", stream, "msgs", "*.blk"))
	if err != nil || len(blks) == 0 {
		t.Fatalf("no message blocks of %s under %s (%v)", stream, storeDir, err)
	}
	sort.Slice(blks, func(i, j int) bool { return blkIndex(blks[i]) < blkIndex(blks[j]) })
	last := blks[len(blks)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s from %d to %d bytes", filepath.Base(last), fi.Size(), fi.Size()/2)
}

func blkIndex(path string) int {
	var i int
	_, _ = fmt.Sscanf(filepath.Base(path), "%d.blk", &i)
	return i
}
