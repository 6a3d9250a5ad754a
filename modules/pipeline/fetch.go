package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/streams"
)

// readyWait is how long the second half of a fetch waits for its batch to fill. Under load
// the batch fills at once (by count or bytes); when lines trickle in, a batch is what came
// within readyWait, so an entry waits milliseconds, not max_wait, before it is written.
const readyWait = 5 * time.Millisecond

// fetch pulls one batch in two steps: it waits up to MaxWait for the first message (of any
// size: a chunk bigger than MaxBytes is delivered alone instead of stalling the consumer,
// since a fetch bounded by bytes returns nothing while the next message is bigger than the
// bound), then takes what else is ready within readyWait, up to MaxMsgs and MaxBytes. The
// batch is adaptive like the monitors' chunks: a lone line goes out at once, a burst fills
// whole batches. Measured with the end-to-end benchmark (internal/cmd/bench): a fetch that
// waited max_wait (1s) for a full batch gave p99 868 ms at 10k lines/s.
func fetch(ctx context.Context, c jetstream.Consumer, opts streams.FetchOpts) ([]jetstream.Msg, error) {
	msgs, err := streams.Fetch(ctx, c, streams.FetchOpts{MaxMsgs: 1, MaxWait: opts.MaxWait})
	if err != nil || len(msgs) == 0 || ctx.Err() != nil || opts.MaxMsgs <= 1 {
		return msgs, err
	}
	fo := []jetstream.FetchOpt{jetstream.FetchMaxWait(readyWait)}
	if opts.MaxBytes > 0 {
		left := opts.MaxBytes - len(msgs[0].Data())
		if left <= 0 {
			return msgs, nil
		}
		fo = append(fo, jetstream.FetchMaxBytes(left))
	}
	// Bounded by the server's expiry (readyWait), not by ctx: a pull abandoned by the client
	// would leave its messages delivered to nobody until AckWait.
	batch, err := c.Fetch(opts.MaxMsgs-1, fo...)
	if err != nil {
		return msgs, nil // the first message is in hand; the next fetch reports a lasting error
	}
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// pending is the consumer's lag after the batch: the last message's metadata carries the
// number of messages not yet delivered, so sampling it costs no request.
func pending(msgs []jetstream.Msg) float64 {
	if len(msgs) == 0 {
		return 0
	}
	meta, err := msgs[len(msgs)-1].Metadata()
	if err != nil {
		return 0
	}
	return float64(meta.NumPending)
}

// nakAll hands messages back for immediate redelivery (to this node or another sharing the
// durable): used when a stop interrupts a batch.
func nakAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if m != nil {
			_ = m.Nak()
		}
	}
}
