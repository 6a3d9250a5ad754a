package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

const workersYAML = `
processors:
  - name: parsed
    input: logs.>
    workers: %d
    steps:
      - json: {}
      - drop: 'fields.level == "debug"'
      - redact: { fields: [password] }
`

// publishInterleaved publishes chunks[k] chunks of perChunk JSON lines for source k, one
// chunk of each source in turn, so that every fetched batch holds several subjects.
func publishInterleaved(t *testing.T, js jetstream.JetStream, chunks []int, perChunk int) {
	t.Helper()
	lines := jsonLines(slicesMax(chunks) * perChunk)
	for c := range slicesMax(chunks) {
		for k, n := range chunks {
			if c < n {
				publishIno(t, js, fmt.Sprintf("/var/log/src%d.log", k), uint64(10+k), lines[c*perChunk:(c+1)*perChunk], perChunk)
			}
		}
	}
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// checkDerived checks that msgs hold every input chunk exactly once (msg id LOGS:<seq>),
// that each derived chunk has the kept entries of its input in order, and, with ordered,
// that each source's derived chunks are in the order of its input chunks.
func checkDerived(t *testing.T, msgs []storedMsg, inputs int, perChunk int, ordered bool) {
	t.Helper()
	ids := map[string]bool{}
	lastI := map[string]int64{}
	for _, m := range msgs {
		if ids[m.ID] {
			t.Fatalf("derived chunk %s stored twice", m.ID)
		}
		ids[m.ID] = true
		entries, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != perChunk*4/5 {
			t.Fatalf("%s: %d entries, want %d", m.ID, len(entries), perChunk*4/5)
		}
		first := entries[0].Fields["i"].(int64)
		for j, en := range entries {
			if i := en.Fields["i"].(int64); j > 0 && i <= entries[j-1].Fields["i"].(int64) || i/int64(perChunk) != first/int64(perChunk) ||
				en.Fields["password"] != "[REDACTED]" || streams.Subject("parsed", "file", "h1", en.Source) != m.Subject {
				t.Fatalf("%s: entry %d out of place: %+v", m.ID, j, en)
			}
		}
		if last, ok := lastI[m.Subject]; ordered && ok && first <= last {
			t.Fatalf("%s on %s: entry %d after %d: source order broken", m.ID, m.Subject, first, last)
		}
		lastI[m.Subject] = first
	}
	for seq := 1; seq <= inputs; seq++ {
		if !ids[fmt.Sprintf("LOGS:%d", seq)] {
			t.Fatalf("input chunk LOGS:%d has no derived chunk", seq)
		}
	}
}

// Several sources through one processor with 1, 2 and 4 workers: every input chunk is
// derived exactly once, each source's order is kept, and the derived stream is the very
// same, message for message and byte for byte, whatever the number of workers (outputs are
// published in the input's order once a batch is transformed): a rebuild reproduces it.
func TestProcessorWorkersKeepOrder(t *testing.T) {
	chunks, perChunk := []int{40, 40, 40, 40, 40, 40}, 25
	if raceEnabled {
		chunks = []int{15, 15, 15, 15, 15, 15}
	}
	inputs := len(chunks) * chunks[0]
	var want []storedMsg
	for _, w := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			e := newEnv(t)
			publishInterleaved(t, e.js, chunks, perChunk)
			run(t, e, parseConfig(t, fmt.Sprintf(workersYAML, w)), fastTuning)
			waitMsgs(t, e.js, "PARSED", uint64(inputs), 60*time.Second)
			got := readStream(t, e.js, "PARSED")
			checkDerived(t, got, inputs, perChunk, true)
			if want == nil {
				want = got
				return
			}
			for k := range want {
				if o, r := want[k], got[k]; o.Subject != r.Subject || o.ID != r.ID || !bytes.Equal(o.Data, r.Data) {
					t.Fatalf("message %d differs from workers: 1:\n%s %s %.200s\n%s %s %.200s", k, o.Subject, o.ID, o.Data, r.Subject, r.ID, r.Data)
				}
			}
		})
	}
}

// With 4 workers, outputs that cannot be stored are nak'ed and redelivered, and a consumer
// that delivers everything again is deduplicated by the outputs' msg ids: every input
// chunk ends up derived exactly once.
//
// The derived stream refuses a fifth message per subject (discard new per subject) until
// the test lifts the limit: source 0's chunks past 4 fail their publishes (retried, then
// nak'ed and redelivered) while the other sources flow. A redelivered chunk may land after
// later chunks of its source, with any number of workers (JetStream redelivers it after
// the delay), so this test checks order within chunks, not across them.
func TestProcessorWorkersRedeliveryExactlyOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := parseConfig(t, fmt.Sprintf(workersYAML, 4))
	pl := run(t, e, cfg, fastTuning)
	natstest.Eventually(t, 20*time.Second, func() error {
		_, err := e.js.Consumer(ctx, "LOGS", "parsed")
		return err
	})
	s, err := e.js.Stream(ctx, "PARSED")
	if err != nil {
		t.Fatal(err)
	}
	open := s.CachedInfo().Config
	limited := open
	limited.MaxMsgsPerSubject, limited.Discard, limited.DiscardNewPerSubject = 4, jetstream.DiscardNew, true
	if _, err := e.js.UpdateStream(ctx, limited); err != nil {
		t.Fatal(err)
	}
	chunks, perChunk := []int{6, 4, 4, 4}, 25
	inputs := 18
	publishInterleaved(t, e.js, chunks, perChunk)
	// Source 0's 5th and 6th chunks are refused: wait until JetStream redelivered them.
	natstest.Eventually(t, 30*time.Second, func() error {
		info, err := consumerInfo(ctx, e.js, "LOGS", "parsed")
		if err != nil {
			return err
		}
		if info.NumRedelivered == 0 {
			return fmt.Errorf("nothing redelivered yet (ack pending %d)", info.NumAckPending)
		}
		return nil
	})
	if n, err := streamMsgs(e.js, "PARSED"); err != nil || n != uint64(inputs-2) {
		t.Fatalf("PARSED has %d messages (%v) while limited, want %d", n, err, inputs-2)
	}
	if _, err := e.js.UpdateStream(ctx, open); err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, e.js, "PARSED", uint64(inputs), 30*time.Second)
	before := readStream(t, e.js, "PARSED")
	checkDerived(t, before, inputs, perChunk, false)

	// Every input delivered again: a new consumer from the start, the outputs' msg ids
	// within the duplicate window.
	stoppedByTest.Store(pl, true)
	stop(t, pl, cfg.ShutdownTimeout.D())
	if err := e.js.DeleteConsumer(ctx, "LOGS", "parsed"); err != nil {
		t.Fatal(err)
	}
	pl = run(t, e, cfg, fastTuning)
	natstest.Eventually(t, 30*time.Second, func() error {
		if st := pl.Stats().Processors["parsed"]; st.Chunks != uint64(inputs) {
			return fmt.Errorf("processed %d chunks again, want %d", st.Chunks, inputs)
		}
		info, err := consumerInfo(ctx, e.js, "LOGS", "parsed")
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	after := readStream(t, e.js, "PARSED")
	if len(after) != len(before) || after[len(after)-1].Seq != before[len(before)-1].Seq {
		t.Fatalf("redelivery stored again: %d messages (last seq %d), before %d (last seq %d)",
			len(after), after[len(after)-1].Seq, len(before), before[len(before)-1].Seq)
	}
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}
