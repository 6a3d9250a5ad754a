// Package delivery is logcap's one delivery engine: what happens to a message between the
// moment a stage fetched it and the moment it is settled. A processor and a sink (modules/
// pipeline) and a replay into a sink (package replay) all go through it:
//
//	fetch → decode → write (a sink) or transform and publish (a processor)
//	      → ack | nak (now, or after a delay) | dead letter (the message is terminated)
//
// One place decides: how the batch in hand is retried (retry.Policy, a destination's
// Retry-After, partial and permanent failures), when a destination counts as down (its
// Check probe), when a message has failed often enough to go to dead letters (MaxDeliver),
// and what a stop does to a write in progress (the grace period, then nak). The engine
// knows neither NATS nor fx: a message comes with a Settler that acks it where it came
// from, fetching is a function, and the engine starts no goroutine.
package delivery

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/logcap/logcap/retry"
)

// Msg is one message fetched from a stream.
type Msg struct {
	Stream, Subject string
	Header          map[string][]string
	Data            []byte
	Seq             uint64    // stream sequence
	Delivered       uint64    // deliveries so far, this one included (0: unknown)
	Pending         uint64    // the consumer's messages not yet delivered after this one
	Time            time.Time // when the stream stored it
	// Settle acknowledges the message where it came from. nil: nothing to settle (a
	// replay's ordered consumer).
	Settle Settler
}

// Settler settles one message with its source (a JetStream message in modules/pipeline).
type Settler interface {
	Ack() error
	// Nak hands the message back for redelivery after delay (0: at once).
	Nak(delay time.Duration) error
	// InProgress extends the message's ack wait: it is still being worked on.
	InProgress() error
	// DeadLetter stores the message with its cause in the dead-letter stream, then
	// terminates it: it is never redelivered.
	DeadLetter(ctx context.Context, cause error) error
}

func (m *Msg) ack() {
	if m.Settle != nil {
		_ = m.Settle.Ack()
	}
}

func (m *Msg) nak(delay time.Duration) error {
	if m.Settle == nil {
		return nil
	}
	return m.Settle.Nak(delay)
}

func (m *Msg) inProgress() {
	if m.Settle != nil {
		_ = m.Settle.InProgress()
	}
}

// Observer is told what a stage does, for metrics and counters. Embed NopObserver to
// implement only part of it.
type Observer interface {
	// Fetched: a fetch returned; pending is the consumer's lag after it.
	Fetched(pending uint64)
	// Wrote: one sink Write returned after took, having accepted accepted records of
	// bytes message bytes.
	Wrote(accepted, bytes int, took time.Duration)
	// Retrying: the batch in hand failed (err) and is written again after wait.
	Retrying(attempt int, wait time.Duration, err error)
	// Healthy: the destination answers (true) or is down (false).
	Healthy(up bool)
	// DeadLettered: a message went to dead letters.
	DeadLettered()
}

// NopObserver observes nothing.
type NopObserver struct{}

func (NopObserver) Fetched(uint64)                     {}
func (NopObserver) Wrote(int, int, time.Duration)      {}
func (NopObserver) Retrying(int, time.Duration, error) {}
func (NopObserver) Healthy(bool)                       {}
func (NopObserver) DeadLettered()                      {}

// Stage is one consumer's delivery policy: a processor's, a sink's, or a replay's.
type Stage struct {
	// Name is the consumer's name (the durable, or the sink a replay writes to); Type the
	// sink's type, for the error of a stop that cut a write.
	Name, Type string
	Log        *zap.Logger // nil: no logs
	Obs        Observer    // nil: NopObserver
	// MaxDeliver bounds the deliveries of a message whose output failed (a processor), and
	// the attempts at a sink's batch in hand; then the message goes to dead letters.
	MaxDeliver int
	// Retry spaces the attempts at the batch in hand and the probes of a destination that is
	// down. A destination's Retry-After wins over it.
	Retry retry.Policy
	// Redeliver delays the redelivery of a message handed back after a failure.
	Redeliver time.Duration
	// AckWait is the consumer's ack wait: messages held while a destination is down get
	// InProgress every third of it.
	AckWait time.Duration
	// Grace is how long a stop lets a write in hand finish (named in the error of a cut).
	Grace time.Duration
	// MaxEntries bounds the records of one sink Write (0: the whole batch).
	MaxEntries int
	// Prefix, when set, prefixes the cause of every dead letter (e.g. "processor parsed").
	Prefix string
	// FailFast: a failure the pipeline would dead-letter or wait out ends the delivery with
	// an error instead, and the destination is not probed between attempts (a replay: a
	// person is watching, and nothing is left behind in a consumer).
	FailFast bool
	// NoFields: the sink does not read entries' Fields (sinks.FieldsReader), so derived
	// chunks are decoded without building them.
	NoFields bool
}

func (s *Stage) log() *zap.Logger {
	if s.Log == nil {
		return zap.NewNop()
	}
	return s.Log
}

func (s *Stage) obs() Observer {
	if s.Obs == nil {
		return NopObserver{}
	}
	return s.Obs
}

// fetchRetry spaces the fetches of a consumer whose fetch failed.
var fetchRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.Full}

// Consume fetches and handles batches until ctx is done. A failed fetch is logged and
// retried with back-off; a batch fetched while the stop began is handed back at once. It
// returns nil on a stop, or the first error handle returns.
func (s *Stage) Consume(ctx context.Context, fetch func(context.Context) ([]*Msg, error), handle func(context.Context, []*Msg) error) error {
	backoff := fetchRetry.New()
	for {
		msgs, err := fetch(ctx)
		if ctx.Err() != nil {
			for _, m := range msgs {
				_ = m.nak(0)
			}
			return nil
		}
		if err != nil {
			s.log().Warn("fetch failed", zap.Error(err))
			if !backoff.Wait(ctx) {
				return nil
			}
			continue
		}
		backoff.Reset()
		var pending uint64
		if len(msgs) > 0 {
			pending = msgs[len(msgs)-1].Pending
		}
		s.obs().Fetched(pending)
		if len(msgs) > 0 {
			if err := handle(ctx, msgs); err != nil {
				return err
			}
		}
	}
}

// DeadLetter sends m to dead letters with its cause. If that fails, m is handed back (after
// Redeliver) and the next delivery tries again: the dead letter's own msg id makes that safe.
// Without a Settler (FailFast) the cause is returned instead.
func (s *Stage) DeadLetter(ctx context.Context, m *Msg, cause error) error {
	if s.Prefix != "" {
		cause = fmt.Errorf("%s: %w", s.Prefix, cause)
	}
	if s.FailFast || m.Settle == nil {
		return cause
	}
	if err := m.Settle.DeadLetter(ctx, cause); err != nil {
		s.log().Error("dead letter failed; the message will be redelivered", zap.String("subject", m.Subject), zap.Error(err))
		_ = m.nak(s.Redeliver)
		return nil
	}
	s.obs().DeadLettered()
	s.log().Warn("message dead-lettered", zap.String("subject", m.Subject), zap.Error(cause))
	return nil
}

// Settle ends a batch whose outputs were made elsewhere (a processor's publishes): failed[i]
// is why message i's output is not durable (nil: it is), settled[i] that it was
// dead-lettered already. A message whose output is durable is acked; a failed one is handed
// back at once during a stop, goes to dead letters once it was delivered MaxDeliver times,
// and is redelivered after Redeliver otherwise. what names the output in the dead letter.
func (s *Stage) Settle(ctx context.Context, msgs []*Msg, failed []error, settled []bool, what string) {
	for i, m := range msgs {
		switch {
		case settled[i]:
		case failed[i] == nil:
			m.ack()
		case ctx.Err() != nil:
			_ = m.nak(0) // stopping: let another node (or the next start) take it at once
		case m.Delivered >= uint64(s.MaxDeliver):
			_ = s.DeadLetter(ctx, m, fmt.Errorf("%s (delivery %d of %d): %w", what, m.Delivered, s.MaxDeliver, failed[i]))
		default:
			s.log().Warn("output failed; the input will be redelivered", zap.String("subject", m.Subject), zap.Error(failed[i]))
			_ = m.nak(s.Redeliver)
		}
	}
}
