package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/modules/lifecycle"
)

// Concurrent requests of one sink (request.concurrency, for sinks.Concurrent): the consumer
// loop fetches and decodes the next batch while up to concurrency batches are written by
// as many request workers, each through the delivery engine as one batch alone would be
// (retries, probes while the destination is down, dead letters, the grace period of a
// stop). Acks stay in stream order: a batch's acks are sent once every batch fetched before
// it is settled, so the messages acked are always a prefix of those fetched, as with one
// request at a time; a kill -9 leaves at most concurrency batches unacked, redelivered
// after ack_wait (at-least-once; effectively once where the sink has an idempotency key).
//
// The number is fixed, not adaptive: into a store on loopback the sink is CPU-bound (logcap
// and the store share the cores), and 1, 2, 4 or 8 in flight made no difference beyond the
// noise of a shared machine (docs/sinks-http.md, "Why a fixed number").

// job is one fetched batch handed to a request worker.
type job struct {
	msgs []*delivery.Msg
	acks []*heldAck
	prev <-chan struct{} // closed once the batch before this one is settled
	done chan struct{}   // closed once this one is settled
}

// heldAck holds a message's ack until the batches before it are settled (through: it
// only notes it), for the delivered position to know which were acked. Naks, progress and
// dead letters go through at once: they do not advance what counts as delivered.
type heldAck struct {
	delivery.Settler
	acked, through bool
}

func (h *heldAck) Ack() error {
	h.acked = true
	if h.through {
		return h.Settler.Ack()
	}
	return nil
}

// holdAcks wraps the settler of each message in a heldAck.
func holdAcks(msgs []*delivery.Msg, through bool) []*heldAck {
	acks := make([]*heldAck, 0, len(msgs))
	for _, m := range msgs {
		if m.Settle != nil {
			h := &heldAck{Settler: m.Settle, through: through}
			m.Settle = h
			acks = append(acks, h)
		}
	}
	return acks
}

// ackedOnly is the acks that were given, in order.
func ackedOnly(acks []*heldAck) []*heldAck {
	out := acks[:0:0]
	for _, h := range acks {
		if h.acked {
			out = append(out, h)
		}
	}
	return out
}

// startWorkers starts the request workers; the returned function ends them (no new batch
// comes) and waits for them, so that the sink is not closed under a write.
func (r *sinkRunner) startWorkers() (stop func(), err error) {
	r.jobs = make(chan *job)
	r.last = make(chan struct{})
	close(r.last)
	exited := make([]chan struct{}, 0, r.concurrency)
	stop = func() {
		close(r.jobs)
		for _, e := range exited {
			<-e
		}
	}
	for k := range r.concurrency {
		e := make(chan struct{})
		err := r.pl.group.Go(fmt.Sprintf("pipeline: sink %s: request %d", r.cfg.Name, k+1), func(ctx context.Context) error {
			defer close(e)
			return r.work(ctx)
		})
		if err != nil {
			stop()
			return nil, err
		}
		exited = append(exited, e)
	}
	return stop, nil
}

// handOut decodes a fetched batch and hands it to a free worker (waiting for one: the
// batches in flight are bounded). During a stop, a batch no worker took is handed back.
func (r *sinkRunner) handOut(stop context.Context, msgs []*delivery.Msg) error {
	if msgs = r.pos.skip(stop, msgs); len(msgs) == 0 {
		return nil
	}
	j := &job{msgs: msgs, acks: holdAcks(msgs, false), prev: r.last, done: make(chan struct{})}
	select {
	case r.jobs <- j:
		r.last = j.done
		return nil
	case <-stop.Done():
		for _, m := range msgs {
			_ = m.Settle.Nak(0)
		}
		return nil
	}
}

// work delivers the batches handed to this worker until the consumer loop ends. A stop
// that had to cut a write is reported once the worker ends.
func (r *sinkRunner) work(stop context.Context) error {
	var errs []error
	for j := range r.jobs {
		if err := r.deliverJob(stop, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *sinkRunner) deliverJob(stop context.Context, j *job) error {
	defer close(j.done)
	ctx, cancel := lifecycle.WithGrace(stop, r.pl.tuning.Grace)
	defer cancel()
	err := r.stage.Deliver(stop, ctx, r.sink, r.stage.NewBatch(ctx, j.msgs))
	r.waitPrev(ctx, j)
	acked := ackedOnly(j.acks)
	for _, h := range acked {
		_ = h.Settler.Ack()
	}
	r.pos.record(ctx, j.msgs, acked)
	return err
}

// waitPrev waits until the batch before j is settled. Meanwhile j's accepted messages get
// InProgress every third of ack_wait, as a batch held during an outage does, so that
// JetStream does not redeliver what is already written. The batch before is bounded by the
// same grace period after a stop: past it (ctx done), j's acks go out anyway, since what
// they acknowledge is stored.
func (r *sinkRunner) waitPrev(ctx context.Context, j *job) {
	tick := time.NewTicker(max(r.stage.AckWait/3, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-j.prev:
			return
		case <-tick.C:
			for _, h := range j.acks {
				if h.acked {
					_ = h.Settler.InProgress()
				}
			}
		case <-ctx.Done():
			return
		}
	}
}
