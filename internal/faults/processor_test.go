package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/streams"
)

// File source → processor (json → drop → set) → derived stream PARSED. kill -9 of logcap
// while the processor is part-way through, then restart: PARSED holds every expected entry
// exactly once, and every derived chunk's msg id is its input's stream and sequence. With
// workers: 2 the steps run on the processor's transform workers (processors[].workers);
// with memory_limit: 0 the processor overlaps its batches (prefetch, settler).
func TestProcessorKill9(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers int
		head    string
	}{
		{"workers=1", 1, ""},
		{"workers=2", 2, ""},
		{"overlap", 1, "memory_limit: 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { processorKill9(t, tc.workers, tc.head) })
	}
}

func processorKill9(t *testing.T, workers int, head string) {
	total := size(100_000, 1_000_000)
	logs := t.TempDir()
	path := filepath.Join(logs, "app.log")
	n := newNode(t, head+fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning, max_chunk_bytes: 16KiB, max_line_bytes: 4KiB}
processors:
  - name: parsed
    input: logs.>
    ack_wait: 5s
    workers: %d
    steps:
      - json: {}
      - drop: 'fields.level == "debug"'
      - set: { fields: { env: faults } }
`, filepath.Join(logs, "*.log"), workers))
	p := n.start(t)
	dumpLogsOnFailure(t, p)
	js := n.connect(t)

	// Every 4th entry is debug and dropped: the derived stream should hold the others.
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	want := 0
	for i := range total {
		level := "info"
		if i%4 == 0 {
			level = "debug"
		} else {
			want++
		}
		fmt.Fprintf(w, `{"seq":%d,"level":%q,"msg":"entry %d of the processor burst"}`+"\n", i, level, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, 5*time.Millisecond, func() error {
		if n := streamMsgs(t, js, "PARSED"); n < 50 {
			return fmt.Errorf("%d derived chunks", n)
		}
		return nil
	})
	atKill := streamMsgs(t, js, "PARSED")
	p.Kill9()

	p2 := n.start(t)
	dumpLogsOnFailure(t, p2)
	ta, ids := readDerived(t, js, "PARSED", want, 3*time.Minute)
	t.Logf("kill -9 with %d derived chunks stored; %d derived chunks in the end", atKill, ids)
	lost := 0
	for i := range total {
		if i%4 != 0 && ta.seen[i] == 0 {
			lost++
		}
	}
	t.Logf("PARSED: written %d (%d to keep), delivered %d, lost %d, duplicated %d, out of order %d",
		total, want, ta.total, lost, ta.dups, ta.outOfOrder)
	if lost != 0 || ta.dups != 0 || ta.total != want {
		t.Errorf("want the %d kept entries exactly once", want)
	}
	for i := 0; i < total; i += 4 {
		if ta.seen[i] != 0 {
			t.Fatalf("debug entry %d was not dropped", i)
		}
	}
	// The processor acks an input only after its output is stored: the last ack may still
	// be on its way when the last derived chunk has been read.
	if err := waitFor(30*time.Second, 50*time.Millisecond, func() error { return consumerDone(js, "LOGS", "parsed") }); err != nil {
		t.Error(err)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		return 0 // not provisioned yet
	}
	return s.CachedInfo().State.Msgs
}

// readDerived reads a derived stream's chunks with an ordered consumer until want
// entries arrived or timeout passes. It checks each entry (the set step's field) and each
// chunk's msg id ("LOGS:<seq>", unique), and returns the tally of fields.seq and the number
// of chunks.
func readDerived(t *testing.T, js jetstream.JetStream, stream string, want int, timeout time.Duration) (*tally, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cons jetstream.Consumer
	poll(t, timeout, 100*time.Millisecond, func() (err error) {
		cons, err = js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		return err
	})
	ta := newTally()
	ids := map[string]bool{}
	for ta.total < want && ctx.Err() == nil {
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			id := m.Headers().Get("Nats-Msg-Id")
			if _, seq, ok := bytes.Cut([]byte(id), []byte{':'}); !ok || !bytes.HasPrefix([]byte(id), []byte("LOGS:")) || !isUint(seq) {
				t.Fatalf("derived chunk with msg id %q, want LOGS:<seq>", id)
			}
			if ids[id] {
				t.Errorf("msg id %s stored twice", id)
			}
			ids[id] = true
			es, err := streams.Entries(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				seq, ok := e.Fields["seq"].(int64)
				if !ok || e.Fields["env"] != "faults" {
					t.Fatalf("derived entry %+v: want fields seq (a number) and env faults", e)
				}
				ta.addN(int(seq))
			}
		}
	}
	return ta, len(ids)
}

func isUint(b []byte) bool {
	_, err := strconv.ParseUint(string(b), 10, 64)
	return err == nil
}
