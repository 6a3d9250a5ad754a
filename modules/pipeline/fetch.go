package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

// readyWait is how long the second half of a fetch waits for its batch to fill. Under load
// the batch fills at once (by count or bytes); when lines trickle in, a batch is what came
// within readyWait, so an entry waits milliseconds, not max_wait, before it is written.
const readyWait = 5 * time.Millisecond

// setupRetry spaces the attempts to provision a consumer: NATS may not be ready yet, and a
// sink's input stream may be provisioned by a processor starting at the same time.
var setupRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.Equal}

// setupNotReadyAfter is the failed setup attempts after which /readyz says so (~0.4 s in): at
// start a sink's input may be a derived stream its processor is making at that moment.
const setupNotReadyAfter = 3

// consumer is one processor's or sink's durable consumer, for Pipeline.consume.
type consumer struct {
	what  string // "sink NAME", "processor NAME": for logs
	input string // the subject filter consumed
	stage *delivery.Stage
	fetch streams.FetchOpts
	spec  func(stream string) streams.ConsumerSpec
	// prepare, if set, runs before the input's stream is looked up (a processor provisions
	// its derived stream: another stage's input may be in it).
	prepare func(ctx context.Context, js jetstream.JetStream) error
	// ready, if set, runs once the consumer is set up, before the first fetch.
	ready   func(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer)
	running func(stream string)
	// before, if set, runs before each fetch; an error (ctx done) skips the fetch. Without
	// prefetch nothing of the last batch is in hand then; with it, it runs in the prefetch
	// goroutine while the loop handles the batch before.
	before func(ctx context.Context) error
	// prefetch: fetch the next batch while handle works on this one (Pipeline.prefetch).
	prefetch bool
	handle   func(ctx context.Context, msgs []*delivery.Msg) error
}

// consume waits for NATS, sets the consumer up (retrying), then fetches and hands batches to
// the delivery engine until ctx is done.
func (pl *Pipeline) consume(ctx context.Context, c consumer) error {
	if err := pl.client.WaitReady(ctx); err != nil {
		return nil
	}
	js := pl.client.JS
	var cons jetstream.Consumer
	var stream string
	err := setupRetry.Until(ctx, 10*time.Second, func(ctx context.Context) error {
		if c.prepare != nil {
			if err := c.prepare(ctx, js); err != nil {
				return err
			}
		}
		s, err := js.StreamNameBySubject(ctx, c.input)
		if err != nil {
			return fmt.Errorf("input %s: find its stream: %w", c.input, err)
		}
		stream = s
		cons, err = streams.EnsureConsumer(ctx, js, c.spec(s))
		return err
	}, func(attempt int, err error) {
		if attempt >= setupNotReadyAfter {
			pl.setup.note(c.what, err) // /readyz first, then the log: a test reads them in that order
		}
		if attempt > 0 {
			c.stage.Log.Warn("setup failed; retrying", zap.String("component", c.what), zap.Error(err))
		}
	})
	if err != nil {
		return nil
	}
	pl.setup.clear(c.what)
	if c.ready != nil {
		c.ready(ctx, js, cons)
	}
	c.running(stream)
	next := func(ctx context.Context) ([]*delivery.Msg, error) {
		if c.before != nil && c.before(ctx) != nil {
			return nil, nil // ctx is done: Consume returns
		}
		msgs, err := fetch(ctx, cons, c.fetch)
		return adapt(ctx, c.stage, js, msgs), err
	}
	if c.prefetch {
		ahead, wait, err := pl.prefetch(ctx, c.what, next)
		if err != nil {
			return nil // the group is stopping
		}
		defer wait()
		next = ahead
	}
	return c.stage.Consume(ctx, next, c.handle)
}

// fetched is one fetch's result, handed from the prefetch goroutine to the consumer loop.
type fetched struct {
	msgs []*delivery.Msg
	err  error
}

// prefetch runs next in a goroutine of its own, one batch ahead of the consumer loop: the
// loop's fetch returns the batch fetched while it handled the one before. Measured (json8
// row, memory_limit 0): a processor's fetches took 3.6 s of its 10.7 s, one round trip
// and a copy of up to 1 MiB each. A batch fetched when the stop began is handed back at
// once; wait returns once the goroutine is gone.
func (pl *Pipeline) prefetch(ctx context.Context, what string, next func(context.Context) ([]*delivery.Msg, error)) (ahead func(context.Context) ([]*delivery.Msg, error), wait func(), err error) {
	ch, exited := make(chan fetched), make(chan struct{})
	err = pl.group.Go("pipeline: "+what+": prefetch", func(context.Context) error {
		defer close(exited)
		for ctx.Err() == nil {
			msgs, err := next(ctx)
			select {
			case ch <- fetched{msgs: msgs, err: err}:
			case <-ctx.Done():
				for _, m := range msgs {
					if m.Settle != nil {
						_ = m.Settle.Nak(0)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	ahead = func(ctx context.Context) ([]*delivery.Msg, error) {
		select {
		case f := <-ch:
			return f.msgs, f.err
		case <-ctx.Done():
			return nil, nil // Consume returns
		}
	}
	return ahead, func() { <-exited }, nil
}

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

// adapt turns fetched JetStream messages into the engine's, each settled by its jsMsg. A
// message whose metadata cannot be read (it names the stream and sequence) goes to dead
// letters at once.
func adapt(ctx context.Context, stage *delivery.Stage, js jetstream.JetStream, in []jetstream.Msg) []*delivery.Msg {
	out := make([]*delivery.Msg, 0, len(in))
	for _, m := range in {
		settle := &jsMsg{m: m, js: js, consumer: stage.Name}
		meta, err := m.Metadata()
		if err != nil {
			_ = stage.DeadLetter(ctx, &delivery.Msg{Subject: m.Subject(), Settle: settle}, fmt.Errorf("metadata: %w", err))
			continue
		}
		out = append(out, &delivery.Msg{
			Stream: meta.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Seq: meta.Sequence.Stream,
			Delivered: meta.NumDelivered, Pending: meta.NumPending, Time: meta.Timestamp, Settle: settle,
		})
	}
	return out
}

// jsMsg settles a JetStream message for the delivery engine; its dead letters go to the
// DEADLETTER stream (streams.DeadLetter).
type jsMsg struct {
	m        jetstream.Msg
	js       jetstream.JetStream
	consumer string
}

func (j *jsMsg) Ack() error { return j.m.Ack() }

// ackSync acks the message again and waits for the server's answer: the consumer takes a
// connection's acks in order, so once it answers, every ack sent before is processed. An ack
// of a message already acked changes nothing.
func (j *jsMsg) ackSync(ctx context.Context) error {
	_, err := j.js.Conn().RequestWithContext(ctx, j.m.Reply(), []byte("+ACK"))
	return err
}
func (j *jsMsg) InProgress() error { return j.m.InProgress() }

func (j *jsMsg) Nak(delay time.Duration) error {
	if delay > 0 {
		return j.m.NakWithDelay(delay)
	}
	return j.m.Nak()
}

func (j *jsMsg) DeadLetter(ctx context.Context, cause error) error {
	return streams.DeadLetter(ctx, j.js, j.consumer, j.m, cause)
}

var _ delivery.Settler = (*jsMsg)(nil)
