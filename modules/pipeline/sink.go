package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

const (
	defaultBatchEntries   = 10000 // a 1 MiB chunk holds ~5,000 200-byte lines: one Write (one fsync) per chunk, not six
	defaultBatchBytes     = 1 << 20
	defaultBatchWait      = time.Second
	defaultSinkMaxDeliver = 10
)

// sinkRunner is one sink's consumer: the delivery engine does the work (delivery.Stage);
// this is its configuration, its consumer and its counters.
type sinkRunner struct {
	pl      *Pipeline
	cfg     config.Component
	sink    sinks.Sink
	stage   *delivery.Stage
	log     *zap.Logger
	started bool

	maxEntries, maxBytes int
	maxWait              time.Duration
	concurrency          int // batches in flight
	jobs                 chan *job
	pos                  *position     // the delivered position; nil: none kept
	last                 chan struct{} // closed once the last batch handed out is settled

	entries, batches, retries, dead atomic.Uint64

	mEntries, mBytes, mBatches, mRetries, mDead prometheus.Counter
	mLatency                                    prometheus.Observer
	mHealthy, mPending, mDown                   prometheus.Gauge
	mProbesFailed                               prometheus.Counter
}

func newSinkRunner(pl *Pipeline, sc config.Component, s sinks.Sink) *sinkRunner {
	r := &sinkRunner{
		pl: pl, cfg: sc, sink: s, log: pl.log.With(zap.String("sink", sc.Name)),
		maxEntries: orDefault(sc.Batch.MaxEntries, defaultBatchEntries), maxBytes: orDefault(int(sc.Batch.MaxBytes), defaultBatchBytes),
		maxWait:  orDefault(sc.Batch.MaxWait.D(), defaultBatchWait),
		mEntries: pl.m.sinkEntries.WithLabelValues(sc.Name), mBytes: pl.m.sinkBytes.WithLabelValues(sc.Name),
		mBatches: pl.m.sinkBatches.WithLabelValues(sc.Name), mRetries: pl.m.sinkRetries.WithLabelValues(sc.Name),
		mDead: pl.m.deadLetters.WithLabelValues(sc.Name), mLatency: pl.m.sinkLatency.WithLabelValues(sc.Name),
		mHealthy: pl.m.sinkHealthy.WithLabelValues(sc.Name), mPending: pl.m.pending.WithLabelValues(sc.Name),
		mDown: pl.m.sinkDown.WithLabelValues(sc.Name), mProbesFailed: pl.m.sinkProbesFailed.WithLabelValues(sc.Name),
	}
	// The sink's backoff: shapes its retries, else the pipeline's Tuning does.
	base := orDefault(sc.Backoff.Initial.D(), pl.tuning.BackoffBase)
	r.stage = &delivery.Stage{
		Name: sc.Name, Type: sc.Type, Log: r.log, Obs: (*sinkObserver)(r),
		MaxDeliver: orDefault(sc.MaxDeliver, defaultSinkMaxDeliver),
		Retry:      retry.Policy{Initial: base, Max: orDefault(sc.Backoff.Max.D(), max(pl.tuning.BackoffMax, base)), Jitter: retry.Full},
		AckWait:    orDefault(sc.AckWait.D(), defaultAckWait), Grace: pl.tuning.Grace, MaxEntries: r.maxEntries,
	}
	if fr, ok := s.(sinks.FieldsReader); ok {
		r.stage.NoFields = !fr.ReadsFields()
	}
	r.concurrency = 1
	if c, ok := s.(sinks.Concurrent); ok && !r.ordered() {
		r.concurrency = orDefault(sc.Request.Concurrency, c.Concurrency())
	}
	r.mHealthy.Set(1)
	return r
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// consumerSpec is the sink's durable consumer on its input's stream.
func (r *sinkRunner) consumerSpec(stream string) streams.ConsumerSpec {
	return streams.ConsumerSpec{
		Stream: stream, Durable: r.cfg.Name, Filters: []string{r.cfg.Input}, AckWait: r.stage.AckWait,
		// Attempts are counted here, against a destination that answers; JetStream's own
		// max_deliver would drop a message silently.
		MaxDeliver: -1, MaxAckPending: r.maxAckPending(),
	}
}

// maxAckPending bounds the consumer's unacknowledged messages. An Ordered sink gets ONE: after
// a kill -9, the dead process's message stays unacked until ack_wait, and with any more room
// JetStream hands the restarted process (or another node) later messages first, which the
// file sink writes and then skips the redelivered one as already written: whole chunks
// lost (internal/faults TestFileSinkKill9). At the limit, JetStream redelivers
// the expired message before anything newer. A limit of a batch's size is not enough: a
// batch is acked message by message, so a killed process usually leaves fewer unacked.
func (r *sinkRunner) maxAckPending() int {
	if r.ordered() {
		return 1
	}
	// Room for every batch in flight and the one being fetched.
	return max(1000, (r.concurrency+1)*r.maxEntries)
}

func (r *sinkRunner) ordered() bool {
	o, ok := r.sink.(sinks.Ordered)
	return ok && o.Ordered()
}

func (r *sinkRunner) run(ctx context.Context) error {
	// The sink is closed only once its loop is over: no Write can run on a closed sink.
	defer func() {
		if err := r.sink.Close(); err != nil {
			r.log.Warn("close sink", zap.Error(err))
		}
	}()
	// A batch may hold up to max_entries messages (each carries at least one entry); the
	// entries beyond max_entries go out in further writes of the same batch.
	if sc, ok := r.sink.(sinks.StreamChecked); ok {
		sc.SetStreamCheck(r.streamCheck(r.pl.client.JS))
	}
	opts := streams.FetchOpts{MaxMsgs: r.maxEntries, MaxBytes: r.maxBytes, MaxWait: r.maxWait}
	if r.ordered() {
		// One message in flight (maxAckPending): a pull for more would wait out max_wait.
		opts.MaxMsgs = 1
	}
	handle := r.deliver
	if r.concurrency > 1 {
		stopWorkers, err := r.startWorkers()
		if err != nil {
			return nil // the pipeline is stopping
		}
		defer stopWorkers() // before the sink is closed (defers run last first)
		handle = r.handOut
	}
	return r.pl.consume(ctx, consumer{
		what: "sink " + r.cfg.Name, input: r.cfg.Input, stage: r.stage, fetch: opts, spec: r.consumerSpec,
		ready: func(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer) {
			r.pos = r.loadPosition(ctx, js, cons)
		},
		running: func(stream string) {
			r.log.Info("sink running", zap.String("type", r.cfg.Type), zap.String("input", r.cfg.Input), zap.String("input_stream", stream))
		},
		handle: handle,
	})
}

// deliver hands a fetched batch to the engine; a stop lets it finish within the grace period.
func (r *sinkRunner) deliver(stop context.Context, msgs []*delivery.Msg) error {
	if msgs = r.pos.skip(stop, msgs); len(msgs) == 0 {
		return nil
	}
	ctx, cancel := lifecycle.WithGrace(stop, r.pl.tuning.Grace)
	defer cancel()
	var acks []*heldAck
	if r.pos != nil {
		acks = holdAcks(msgs, true)
	}
	err := r.stage.Deliver(stop, ctx, r.sink, r.stage.NewBatch(ctx, msgs))
	r.pos.record(ctx, msgs, ackedOnly(acks))
	return err
}

// sinkObserver counts what the engine reports for one sink.
type sinkObserver sinkRunner

func (o *sinkObserver) Fetched(pending uint64) { o.mPending.Set(float64(pending)) }

func (o *sinkObserver) Wrote(accepted, bytes int, took time.Duration) {
	o.mLatency.Observe(took.Seconds())
	if accepted > 0 {
		o.batches.Add(1)
		o.mBatches.Inc()
		o.entries.Add(uint64(accepted))
		o.mEntries.Add(float64(accepted))
		o.mBytes.Add(float64(bytes))
	}
}

func (o *sinkObserver) Retrying(int, time.Duration, error) {
	o.retries.Add(1)
	o.mRetries.Inc()
}

func (o *sinkObserver) Healthy(up bool) {
	if up {
		o.mHealthy.Set(1)
		o.mDown.Set(0)
	} else {
		o.mHealthy.Set(0)
	}
}

func (o *sinkObserver) DeadLettered() {
	o.dead.Add(1)
	o.mDead.Inc()
}

func (o *sinkObserver) ProbeFailed(downFor time.Duration) {
	o.mProbesFailed.Inc()
	o.mDown.Set(downFor.Seconds())
}

var (
	_ delivery.Observer      = (*sinkObserver)(nil)
	_ delivery.ProbeObserver = (*sinkObserver)(nil)
)
