package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// A message delivered but never acked — held by a process killed with -9, or lost in transit
// when the NATS connection dropped (the soak's external-NATS mode lost 200 lines this way) —
// comes back only after ack_wait. The file sink remembers the newest sequence it wrote, so
// had JetStream handed it newer messages meanwhile, the late one would be skipped as written.
// The ordered sink's consumer allows one unacked message: the newer ones wait.
func TestOrderedSinkGetsTheLateRedeliveryFirst(t *testing.T) {
	e := newEnv(t)
	const chunks, perChunk = 3, 10
	lines := make([]string, chunks*perChunk)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d", i)
	}
	publish(t, e.js, "/o.log", lines, perChunk)

	// The sink's durable, as a node that died left it: the first chunk delivered, never acked.
	// Created without the one-unacked limit, which the pipeline must set itself.
	ctx := context.Background()
	const ackWait = time.Second
	cons, err := streams.EnsureConsumer(ctx, e.js, streams.ConsumerSpec{
		Stream: "LOGS", Durable: "archive", Filters: []string{"logs.>"}, AckWait: ackWait, MaxDeliver: -1, MaxAckPending: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	held, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var heldSeq uint64
	for m := range held.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		heldSeq = meta.Sequence.Stream
	}
	if heldSeq != 1 {
		t.Fatalf("held stream sequence %d, want 1", heldSeq)
	}

	out := filepath.Join(t.TempDir(), "archive.log")
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - {name: archive, type: file, input: logs.>, path: %q, format: raw, ack_wait: %v}
`, out, ackWait))
	run(t, e, cfg, fastTuning)
	natstest.Eventually(t, 30*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != chunks {
			return fmt.Errorf("consumer: %d pending, %d unacked, ack floor %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		return nil
	})
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines, "\n") + "\n"; string(got) != want {
		t.Fatalf("output:\n%s\nwant every line once, in order:\n%s", got, want)
	}
}
