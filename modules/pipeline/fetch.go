package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/streams"
)

// fetch pulls one batch. A fetch bounded by bytes returns nothing while the next message is
// bigger than the bound (nats.go swallows the server's "Message Size Exceeds MaxBytes"), so
// an empty fetch is followed by a short fetch of one message of any size: a big chunk is
// delivered alone instead of stalling the consumer forever.
func fetch(ctx context.Context, c jetstream.Consumer, opts streams.FetchOpts) ([]jetstream.Msg, error) {
	msgs, err := streams.Fetch(ctx, c, opts)
	if err != nil || len(msgs) > 0 || ctx.Err() != nil || opts.MaxBytes == 0 {
		return msgs, err
	}
	return streams.Fetch(ctx, c, streams.FetchOpts{MaxMsgs: 1, MaxWait: 100 * time.Millisecond})
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
