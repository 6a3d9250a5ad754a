package pipeline

import (
	"context"
	"fmt"

	"github.com/logcap/logcap/delivery"
)

// A processor's batches overlap by one: the consumer loop fetches and transforms batch N+1
// while the derived chunks of batch N are published and stored and its inputs acked.
// Measured (json8 row of make bench, memory_limit 0, one source): strictly in sequence, the
// loop spent 6.4 s transforming, 3.6 s fetching and 2.1 s sending publishes of 10.7 s, then
// waited for the acks; the whole process used one core of two.
//
// The settler, a goroutine of the processor's own, takes a transformed batch, publishes its
// derived chunks asynchronously, waits for their acks, publishes again what failed, and
// settles the inputs. It takes batches one at a time, in the order fetched, so the derived
// stream gets its chunks in exactly the order it did before (retries included): a rebuild
// reproduces it byte for byte, and an input is acked only once its outputs are stored. At
// most one batch is in flight beside the one being transformed: its input, its output
// buffers and the client's copy of them.

// inflightBatch is a transformed batch: its outputs to publish, its inputs to settle.
type inflightBatch struct {
	ctx     context.Context // the handle's: outlives the stop by the grace period
	cancel  context.CancelFunc
	msgs    []*delivery.Msg
	outs    []output
	settled []bool   // dead-lettered already: no ack to give
	bufs    [][]byte // the buffers the outputs' data is in
}

// settler is the goroutine that finishes the batch in flight.
type settler struct {
	jobs   chan *inflightBatch
	done   chan [][]byte // a finished batch's buffers, to be reused (nil entries: dropped)
	exited chan struct{}
	busy   bool // a batch was handed over and its done not yet received (loop-owned)
}

// startSettler starts the processor's settler; stop ends it once no batch is in flight.
func (p *processor) startSettler() (stop func(), err error) {
	s := &settler{jobs: make(chan *inflightBatch), done: make(chan [][]byte, 1), exited: make(chan struct{})}
	err = p.pl.group.Go(fmt.Sprintf("pipeline: processor %s: settle", p.cfg.Name), func(context.Context) error {
		defer close(s.exited)
		// It does not watch the group's stop: a batch's waits are bounded by its ctx (the
		// grace period after the stop), and the loop waits for it before it returns.
		for b := range s.jobs {
			s.done <- p.finish(b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.settle = s
	return func() {
		p.drain()
		close(s.jobs)
		<-s.exited
		p.settle = nil
	}, nil
}

// finish publishes a batch's outputs (sending again what failed), settles its inputs,
// and returns its buffers: none that a publish given up on may still read, none grown
// past maxReusedBuf, none while the heap is over memory_limit.
func (p *processor) finish(b *inflightBatch) [][]byte {
	defer b.cancel()
	inFlight := p.publish(b.ctx, b.outs)
	failed := make([]error, len(b.msgs))
	for _, o := range b.outs {
		if !o.ok && failed[o.in] == nil {
			failed[o.in] = o.err
		}
	}
	p.stage.Settle(b.ctx, b.msgs, failed, b.settled, "publish output")
	for k := range b.bufs {
		if inFlight || cap(b.bufs[k]) > maxReusedBuf || p.memoryOver() {
			b.bufs[k] = nil
		}
	}
	return b.bufs
}

// drain waits for the batch in flight, if any, to be settled, and keeps its buffers as
// the spare set for the next batch.
func (p *processor) drain() {
	s := p.settle
	if s == nil || !s.busy {
		return
	}
	p.spare = <-s.done
	s.busy = false
}

// handOver sends a transformed batch to the settler; the loop moves on to the spare
// buffers. drain must have been called: nothing else is in flight.
func (p *processor) handOver(b *inflightBatch) {
	b.bufs = p.bufs
	p.bufs, p.spare = p.spare, nil
	if len(p.bufs) != len(b.bufs) {
		p.bufs = make([][]byte, len(b.bufs))
	}
	p.settle.busy = true
	p.settle.jobs <- b
}
