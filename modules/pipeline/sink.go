package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

const (
	defaultBatchEntries   = 10000 // a 1 MiB chunk holds ~5,000 200-byte lines: one Write (one fsync) per chunk, not six
	defaultBatchBytes     = 1 << 20
	defaultBatchWait      = time.Second
	defaultSinkMaxDeliver = 10
	checkTimeout          = 5 * time.Second
)

type sinkRunner struct {
	pl      *Pipeline
	cfg     config.Component
	sink    sinks.Sink
	log     *zap.Logger
	js      jetstream.JetStream
	cons    jetstream.Consumer
	stream  string
	started bool

	maxEntries, maxBytes int
	maxWait, ackWait     time.Duration
	maxDel               int
	// backoffBase and backoffMax: the sink's `backoff:`, else the pipeline's Tuning.
	backoffBase, backoffMax time.Duration

	entries, batches, retries, dead atomic.Uint64

	mEntries, mBytes, mBatches, mRetries, mDead prometheus.Counter
	mLatency                                    prometheus.Observer
	mHealthy, mPending                          prometheus.Gauge
}

func newSinkRunner(pl *Pipeline, sc config.Component, s sinks.Sink) *sinkRunner {
	r := &sinkRunner{
		pl: pl, cfg: sc, sink: s, log: pl.log.With(zap.String("sink", sc.Name)),
		maxEntries: sc.Batch.MaxEntries, maxBytes: int(sc.Batch.MaxBytes), maxWait: sc.Batch.MaxWait.D(),
		ackWait: sc.AckWait.D(), maxDel: sc.MaxDeliver,
		backoffBase: sc.Backoff.Initial.D(), backoffMax: sc.Backoff.Max.D(),
		mEntries: pl.m.sinkEntries.WithLabelValues(sc.Name), mBytes: pl.m.sinkBytes.WithLabelValues(sc.Name),
		mBatches: pl.m.sinkBatches.WithLabelValues(sc.Name), mRetries: pl.m.sinkRetries.WithLabelValues(sc.Name),
		mDead: pl.m.deadLetters.WithLabelValues(sc.Name), mLatency: pl.m.sinkLatency.WithLabelValues(sc.Name),
		mHealthy: pl.m.sinkHealthy.WithLabelValues(sc.Name), mPending: pl.m.pending.WithLabelValues(sc.Name),
	}
	if r.maxEntries <= 0 {
		r.maxEntries = defaultBatchEntries
	}
	if r.maxBytes <= 0 {
		r.maxBytes = defaultBatchBytes
	}
	if r.maxWait <= 0 {
		r.maxWait = defaultBatchWait
	}
	if r.ackWait <= 0 {
		r.ackWait = defaultAckWait
	}
	if r.maxDel <= 0 {
		r.maxDel = defaultSinkMaxDeliver
	}
	if r.backoffBase <= 0 {
		r.backoffBase = pl.tuning.BackoffBase
	}
	if r.backoffMax <= 0 {
		r.backoffMax = max(pl.tuning.BackoffMax, r.backoffBase)
	}
	r.mHealthy.Set(1)
	return r
}

func (r *sinkRunner) setup(ctx context.Context) error {
	stream, err := r.js.StreamNameBySubject(ctx, r.cfg.Input)
	if err != nil {
		return fmt.Errorf("input %s: find its stream: %w", r.cfg.Input, err)
	}
	r.stream = stream
	r.cons, err = streams.EnsureConsumer(ctx, r.js, streams.ConsumerSpec{
		Stream: stream, Durable: r.cfg.Name, Filters: []string{r.cfg.Input}, AckWait: r.ackWait,
		// Attempts are counted here, against a destination that answers; JetStream's own
		// max_deliver would drop a message silently.
		MaxDeliver: -1, MaxAckPending: r.maxAckPending(),
	})
	return err
}

// maxAckPending bounds the consumer's unacknowledged messages. An Ordered sink gets ONE: after
// a kill -9, the dead process's message stays unacked until ack_wait, and with any more room
// JetStream hands the restarted process (or another node) later messages first, which the
// file sink writes and then skips the redelivered one as already written (found by
// internal/faults TestFileSinkKill9: whole chunks lost). At the limit, JetStream redelivers
// the expired message before anything newer. A limit of a batch's size is not enough: a
// batch is acked message by message, so a killed process usually leaves fewer unacked.
func (r *sinkRunner) maxAckPending() int {
	if r.ordered() {
		return 1
	}
	return max(1000, 2*r.maxEntries)
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
	if err := r.pl.client.WaitReady(ctx); err != nil {
		return nil
	}
	r.js = r.pl.client.JS
	if err := setupLoop(ctx, r.log, "sink "+r.cfg.Name, r.setup); err != nil {
		return nil
	}
	r.log.Info("sink running", zap.String("type", r.cfg.Type), zap.String("input", r.cfg.Input), zap.String("input_stream", r.stream))
	// A batch may hold up to max_entries messages (each carries at least one entry); the
	// entries beyond max_entries go out in further writes of the same batch.
	opts := streams.FetchOpts{MaxMsgs: r.maxEntries, MaxBytes: r.maxBytes, MaxWait: r.maxWait}
	if r.ordered() {
		// One message in flight (maxAckPending): a pull for more would wait out max_wait.
		opts.MaxMsgs = 1
	}
	for attempt := 0; ; {
		msgs, err := fetch(ctx, r.cons, opts)
		if ctx.Err() != nil {
			nakAll(msgs)
			return nil
		}
		if err != nil {
			r.log.Warn("fetch failed", zap.Error(err))
			if !sleep(ctx, sinks.Backoff(attempt, 100*time.Millisecond, 5*time.Second)) {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		r.mPending.Set(pending(msgs))
		if len(msgs) > 0 {
			if err := r.deliver(ctx, msgs); err != nil {
				return err
			}
		}
	}
}

// batch is the batch in hand: its messages, their records, and what is still to write.
type batch struct {
	msgs    []jetstream.Msg
	recs    []sinks.Record
	owner   []int // record → message
	left    []int // per message: records not yet accepted
	settled []bool
}

func (r *sinkRunner) decode(ctx context.Context, msgs []jetstream.Msg) *batch {
	b := &batch{msgs: msgs, left: make([]int, len(msgs)), settled: make([]bool, len(msgs))}
	// Sized from the chunks' line counts: growing a slice of ~5,000 records per 1 MiB chunk
	// by doubling was a quarter of the allocations of the file → file benchmark.
	n := 0
	for _, m := range msgs {
		if l, err := strconv.Atoi(m.Headers().Get(streams.HdrLines)); err == nil && l > 0 {
			n += l
		}
	}
	b.recs, b.owner = make([]sinks.Record, 0, n), make([]int, 0, n)
	for i, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			b.settled[i] = true
			r.deadLetter(ctx, m, fmt.Errorf("metadata: %w", err))
			continue
		}
		ents, raws, err := streams.EntriesRaw(m.Subject(), m.Headers(), m.Data())
		if err != nil {
			b.settled[i] = true
			r.deadLetter(ctx, m, fmt.Errorf("decode: %w", err))
			continue
		}
		for j := range ents {
			rec := sinks.Record{Entry: ents[j], Stream: meta.Stream, Seq: meta.Sequence.Stream, Index: j}
			if raws != nil {
				rec.Raw = raws[j]
			}
			b.recs = append(b.recs, rec)
			b.owner = append(b.owner, i)
		}
		b.left[i] = len(ents)
	}
	return b
}

// deliver writes the batch in hand until every message is acked or dead-lettered, or the
// sink stops. It does not fetch meanwhile: while the destination is down, messages wait in
// JetStream and memory holds one batch. The error says that a stop had to cut a write
// still in progress after the grace period (a destination that does not answer): the stop
// was not clean, and the user must learn which sink hung.
func (r *sinkRunner) deliver(parent context.Context, msgs []jetstream.Msg) error {
	ctx, cancel := lifecycle.WithGrace(parent, r.pl.tuning.Grace)
	defer cancel()
	b := r.decode(ctx, msgs)
	todo := make([]int, len(b.recs))
	for i := range todo {
		todo[i] = i
	}
	r.ackDone(b)
	for attempt := 0; ; {
		var (
			retry    []int
			lastErr  error
			waitHint time.Duration
		)
		for start := 0; start < len(todo); start += r.maxEntries {
			part := todo[start:min(start+r.maxEntries, len(todo))]
			failed, err := r.write(ctx, b, part)
			if err != nil {
				lastErr = err
				var ra *sinks.RetryAfterError
				if errors.As(err, &ra) && ra.After > waitHint {
					waitHint = ra.After
				}
			}
			for k, ri := range part {
				ferr, bad := failed[k]
				mi := b.owner[ri]
				switch {
				case b.settled[mi]:
				case !bad:
					b.left[mi]--
				case errors.Is(ferr, sinks.ErrPermanent):
					b.settled[mi] = true
					r.deadLetter(ctx, b.msgs[mi], ferr)
				default:
					retry = append(retry, ri)
					var ra *sinks.RetryAfterError
					if errors.As(ferr, &ra) && ra.After > waitHint {
						waitHint = ra.After
					}
					lastErr = ferr
				}
			}
			if ctx.Err() != nil {
				retry = append(retry, todo[min(start+r.maxEntries, len(todo)):]...)
				break
			}
		}
		r.ackDone(b)
		todo = todo[:0]
		for _, ri := range retry {
			if !b.settled[b.owner[ri]] {
				todo = append(todo, ri)
			}
		}
		if len(todo) == 0 {
			r.mHealthy.Set(1)
			return nil
		}
		if ctx.Err() != nil {
			return r.cut(b, lastErr)
		}
		attempt++
		if attempt >= r.maxDel {
			for mi, m := range b.msgs {
				if !b.settled[mi] && b.left[mi] > 0 {
					b.settled[mi] = true
					r.deadLetter(ctx, m, fmt.Errorf("sink %s: gave up after %d attempts: %w", r.cfg.Name, attempt, lastErr))
				}
			}
			return nil
		}
		r.retries.Add(1)
		r.mRetries.Inc()
		r.mHealthy.Set(0)
		delay := sinks.Backoff(attempt-1, r.backoffBase, r.backoffMax)
		if waitHint > 0 {
			delay = waitHint
		}
		r.log.Warn("write failed; retrying the batch in hand", zap.Int("attempt", attempt), zap.Int("records", len(todo)),
			zap.Duration("in", delay), zap.Error(lastErr))
		if !r.waitHealthy(parent, b, delay) {
			// Stopped during an outage that was already logged: a clean stop.
			r.nakHeld(b)
			return nil
		}
	}
}

// write sends the records todo (indexes into b.recs) in one Write and returns the failed
// ones by their position in todo. A whole-batch error fails every record with it.
func (r *sinkRunner) write(ctx context.Context, b *batch, todo []int) (map[int]error, error) {
	var recs []sinks.Record
	if len(todo) > 0 && todo[len(todo)-1]-todo[0] == len(todo)-1 {
		// todo is a run of b.recs (always on a first attempt: it is in order, without
		// gaps): no copy. A sink does not keep the slice beyond Write.
		recs = b.recs[todo[0] : todo[0]+len(todo)]
	} else {
		recs = make([]sinks.Record, len(todo))
		for k, ri := range todo {
			recs[k] = b.recs[ri]
		}
	}
	began := time.Now()
	err := r.sink.Write(ctx, recs)
	r.mLatency.Observe(time.Since(began).Seconds())
	failed := map[int]error{}
	var partial *sinks.PartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		for k, e := range partial.Failed {
			if k >= 0 && k < len(recs) {
				failed[k] = e
			}
		}
	default:
		for k := range recs {
			failed[k] = err
		}
	}
	if len(failed) < len(recs) {
		r.batches.Add(1)
		r.mBatches.Inc()
		n, bytes := 0, 0
		for k := range recs {
			if _, bad := failed[k]; !bad {
				n++
				bytes += len(recs[k].Message)
			}
		}
		r.entries.Add(uint64(n))
		r.mEntries.Add(float64(n))
		r.mBytes.Add(float64(bytes))
	}
	return failed, err
}

// ackDone acks every message whose records were all accepted.
func (r *sinkRunner) ackDone(b *batch) {
	for mi, m := range b.msgs {
		if !b.settled[mi] && b.left[mi] == 0 {
			b.settled[mi] = true
			_ = m.Ack()
		}
	}
}

func (r *sinkRunner) nakHeld(b *batch) (held int, nakErr error) {
	for mi, m := range b.msgs {
		if !b.settled[mi] {
			b.settled[mi] = true
			held++
			if err := m.Nak(); err != nil && nakErr == nil {
				nakErr = err
			}
		}
	}
	return held, nakErr
}

// cut hands back the messages of a write the stop cancelled and says so. The write's error
// is formatted, not wrapped: it holds context.Canceled, and the lifecycle group drops
// cancellations as clean.
func (r *sinkRunner) cut(b *batch, writeErr error) error {
	held, nakErr := r.nakHeld(b)
	back := fmt.Sprintf("%d message(s) handed back for redelivery", held)
	if nakErr != nil {
		back = fmt.Sprintf("%d message(s) not acked (nak: %v): JetStream redelivers them after ack_wait %v", held, nakErr, r.ackWait)
	}
	return fmt.Errorf("%s sink %s: stop: write unanswered after the %v grace period, cancelled (%v); %s",
		r.cfg.Type, r.cfg.Name, r.pl.tuning.Grace.Round(time.Millisecond), writeErr, back)
}

// waitHealthy waits delay, then probes the destination with Check until it answers, backing
// off between probes. Attempts are not counted while it is down (an outage is not the
// batch's fault). Meanwhile the held messages' AckWait is extended so that JetStream does
// not hand them to another consumer. false: the sink is stopping.
func (r *sinkRunner) waitHealthy(ctx context.Context, b *batch, delay time.Duration) bool {
	ping := max(r.ackWait/3, 10*time.Millisecond)
	lastPing := time.Now()
	deadline := time.Now().Add(delay)
	for probe := 0; ; {
		if now := time.Now(); now.Before(deadline) {
			d := min(deadline.Sub(now), ping-now.Sub(lastPing))
			if !sleep(ctx, max(d, 0)) {
				return false
			}
			if time.Since(lastPing) >= ping {
				r.inProgress(b)
				lastPing = time.Now()
			}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := r.sink.Check(cctx)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.mHealthy.Set(0)
		if probe == 0 {
			r.log.Warn("destination down; waiting for it (fetching paused)", zap.Error(err))
		}
		deadline = time.Now().Add(sinks.Backoff(probe, r.backoffBase, r.backoffMax) + r.backoffBase/2)
		probe++
	}
}

func (r *sinkRunner) inProgress(b *batch) {
	for mi, m := range b.msgs {
		if !b.settled[mi] {
			_ = m.InProgress()
		}
	}
}

func (r *sinkRunner) deadLetter(ctx context.Context, m jetstream.Msg, cause error) {
	err := streams.DeadLetter(ctx, r.js, r.cfg.Name, m, cause)
	if err != nil {
		r.log.Error("dead letter failed; the message will be redelivered", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Nak()
		return
	}
	r.dead.Add(1)
	r.mDead.Inc()
	r.log.Warn("message dead-lettered", zap.String("subject", m.Subject()), zap.Error(cause))
}
