package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/streams"
)

// A sink's delivered position (streams.SinkPosition), for every sink but the file sink, which
// keeps its own next to its output (sinks.Ordered). The embedded server writes a consumer's
// acks to its store lazily, at most ten times a second (nats-server's consumerFileStore
// flushLoop), so a kill -9 of logcap lost the last 2–12 batches' acks, and the destination
// got them twice (internal/faults TestSinksKill9IntoVictoriaLogs). After each batch's acks,
// the sink waits until the server processed them (one acknowledged ack: the consumer takes
// its acks in order), reads the consumer's ack floor and records it in the positions bucket,
// where it survives the process like any stream message. After a restart, a message at or
// below the recorded floor was delivered: it is acked without being written, once the stream
// is seen to still hold, at the floor, the message recorded there (sinks.StreamCheck, as the
// file sink does), so a stream that went backwards is written, not skipped. What a kill -9
// repeats is then the batches in flight: one with request.concurrency 1.

// position is one sink's record and what it needs to keep it.
type position struct {
	r       *sinkRunner
	kv      jetstream.KeyValue
	cons    jetstream.Consumer
	key     string
	created int64                 // the consumer's creation time (Unix ns)
	rec     *streams.SinkPosition // what the last process recorded; nil: nothing to skip
	valid   int                   // rec checked against the stream: 0 not yet, 1 holds, -1 does not
	skipped uint64

	mu   sync.Mutex // record runs on the request workers
	last uint64     // the floor recorded last
}

// loadPosition opens the positions bucket and reads the sink's record. Without it (a NATS
// that refuses the bucket) the sink runs, and a crash may repeat more than the batches in
// flight: said once.
func (r *sinkRunner) loadPosition(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer) *position {
	if r.ordered() {
		return nil
	}
	p, err := r.openPosition(ctx, js, cons)
	if err != nil {
		r.log.Warn("no delivered position: after a crash, the batches whose acks the server had not yet written are delivered again",
			zap.Error(err))
		return nil
	}
	return p
}

func (r *sinkRunner) openPosition(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer) (*position, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streams.PositionsBucket, History: 1,
		Storage: jetstream.FileStorage, Replicas: max(r.pl.cfg.Streams.Logs.Replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", streams.PositionsBucket, err)
	}
	// The consumer's creation time as it is now: the answer to the create-or-update request
	// (CachedInfo) can be the info the server took when it recovered the consumer at its
	// start, before it restored the creation time from its store.
	ci, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer info: %w", err)
	}
	p := &position{r: r, kv: kv, cons: cons, key: streams.SinkPositionKey(r.cfg.Name), created: ci.Created.UnixNano()}
	e, err := kv.Get(ctx, p.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("kv %s: %s: %w", streams.PositionsBucket, p.key, err)
	}
	rec, err := streams.DecodeSinkPosition(e.Value())
	switch {
	case err != nil:
		r.log.Warn("delivered position unreadable: ignored", zap.String("key", p.key), zap.Error(err))
	case rec.Consumer != p.created:
		r.log.Info("delivered position is an earlier consumer's (it was deleted and created again): ignored",
			zap.String("stream", rec.Stream), zap.Uint64("seq", rec.Seq),
			zap.Time("recorded_consumer_created", time.Unix(0, rec.Consumer)), zap.Time("consumer_created", time.Unix(0, p.created)))
	default:
		p.rec, p.last = rec, rec.Seq
	}
	return p, nil
}

// skip acks, without writing them, the messages at or below the recorded floor: delivered
// before a crash that lost their acks. It keeps the others, in order.
func (p *position) skip(ctx context.Context, msgs []*delivery.Msg) []*delivery.Msg {
	if p == nil || p.rec == nil {
		return msgs
	}
	keep := msgs[:0]
	for _, m := range msgs {
		if m.Stream != p.rec.Stream || m.Seq > p.rec.Seq || m.Settle == nil || !p.holds(ctx) {
			keep = append(keep, m)
			continue
		}
		if p.skipped == 0 {
			p.r.log.Info("skipping messages delivered before a crash whose acks were lost",
				zap.String("stream", p.rec.Stream), zap.Uint64("delivered_up_to", p.rec.Seq))
		}
		p.skipped++
		p.r.pl.m.sinkSkipped.WithLabelValues(p.r.cfg.Name).Inc()
		_ = m.Settle.Ack()
	}
	return keep
}

// holds reports whether the stream still holds, at the recorded floor, the message recorded
// there. An error (NATS unavailable) is not an answer: the message is written.
func (p *position) holds(ctx context.Context) bool {
	if p.valid == 0 {
		ok, err := p.r.streamCheck(p.r.pl.client.JS)(ctx, p.rec.Stream, p.rec.Seq, p.rec.ID)
		if err != nil {
			p.r.log.Warn("delivered position not checked against the stream: writing instead of skipping", zap.Error(err))
			return false
		}
		p.valid = -1
		if ok {
			p.valid = 1
		}
	}
	return p.valid > 0
}

// record makes the consumer's ack floor durable once the batch's acks are processed. acked
// are the batch's messages acked, in stream order. A failure is logged, never fatal: the
// record only lags.
func (p *position) record(ctx context.Context, msgs []*delivery.Msg, acked []*heldAck) {
	if p == nil || len(acked) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.put(ctx, msgs, acked); err != nil && ctx.Err() == nil {
		p.r.log.Debug("delivered position not recorded", zap.Error(err))
	}
}

func (p *position) put(ctx context.Context, msgs []*delivery.Msg, acked []*heldAck) error {
	last, ok := acked[len(acked)-1].Settler.(*jsMsg)
	if !ok {
		return nil
	}
	if err := last.ackSync(ctx); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	ci, err := p.cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer info: %w", err)
	}
	floor := ci.AckFloor.Stream
	if floor <= p.last {
		return nil
	}
	// The message at the floor: in this batch, unless another node acked it (a sink shared
	// by several nodes): then this node does not know its ID, and another records it.
	var id string
	found := false
	for _, m := range msgs {
		if m.Seq == floor {
			found = true
			if v := m.Header[streams.HdrMsgID]; len(v) > 0 {
				id = v[0]
			}
		}
	}
	if !found {
		return nil
	}
	rec := streams.SinkPosition{Stream: ci.Stream, Seq: floor, ID: id, Consumer: p.created}
	if _, err := p.kv.Put(ctx, p.key, rec.Encode()); err != nil {
		return fmt.Errorf("kv %s: %s: %w", streams.PositionsBucket, p.key, err)
	}
	p.last = floor
	return nil
}
