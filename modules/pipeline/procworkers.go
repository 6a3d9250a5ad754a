package pipeline

import (
	"context"
	"fmt"
	"hash/maphash"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/delivery"
)

// Transform workers of one processor (processors[].workers). The consumer loop fetches a
// batch and shares its chunks out by subject: a source's chunks all go to the same worker,
// which runs them through the steps in order, each worker writing its output into a buffer of
// its own. Once every worker is done with the batch, the loop publishes the derived chunks
// in the input's order and settles the batch as one worker would: the derived stream is the
// same, byte for byte, whatever the number of workers (a rebuild reproduces it), an input is
// acked only once its outputs are stored, and a redelivery is deduplicated by the output's
// msg id (<stream>:<seq>). Only the steps run in parallel: they are where the CPU goes.

// defaultProcWorkers is processors[].workers when unset. Measured (docs/bench.md, "Processor
// workers"): on 2 shared cores, 2 workers were no faster than 1 and cost ~15% more CPU-s/GB.
// The transform is about half of a processor's CPU, and the rest (publish, the embedded
// server storing the outputs) already uses the other core.
const defaultProcWorkers = 1

// transformed is what the steps made of one input message: its derived chunks, or the
// error that sends it to dead letters.
type transformed struct {
	out []*nats.Msg
	err error
}

// shardJob is one worker's share of a batch: the messages msgs[idx[...]], whose results go
// to res at the same indices (no two workers write the same index).
type shardJob struct {
	msgs []*delivery.Msg
	idx  []int
	res  []transformed
	buf  *[]byte
	done chan<- struct{}
}

// procPool is the running workers of one processor.
type procPool struct {
	jobs   []chan *shardJob
	exited []chan struct{}
	done   chan struct{} // one token per shard finished, for the batch in hand
	shards [][]int       // reused: the indices of each worker's share
	seed   maphash.Seed  // which worker a source's chunks go to (within this process)
}

// workers is the number of transform workers configured (or defaulted).
func (p *processor) workers() int {
	if p.cfg.Workers > 0 {
		return p.cfg.Workers
	}
	return defaultProcWorkers
}

// startWorkers starts the transform workers (none for one: the loop runs the steps
// itself); the returned function ends them and waits for them. It is called by the loop's
// goroutine before its first fetch, and stop after its last batch: no job is in flight.
func (p *processor) startWorkers() (stop func(), err error) {
	n := p.workers()
	p.bufs = make([][]byte, n)
	if n == 1 {
		return func() {}, nil
	}
	pool := &procPool{done: make(chan struct{}, n), shards: make([][]int, n), seed: maphash.MakeSeed()}
	stop = func() {
		for _, j := range pool.jobs {
			close(j)
		}
		for _, e := range pool.exited {
			<-e
		}
		p.pool = nil
	}
	for k := range n {
		jobs, e := make(chan *shardJob), make(chan struct{})
		err := p.pl.group.Go(fmt.Sprintf("pipeline: processor %s: worker %d", p.cfg.Name, k+1), func(context.Context) error {
			defer close(e)
			for j := range jobs {
				j.run(p)
			}
			return nil
		})
		if err != nil {
			stop()
			return nil, err
		}
		pool.jobs, pool.exited = append(pool.jobs, jobs), append(pool.exited, e)
	}
	p.pool = pool
	return stop, nil
}

// run transforms the worker's share in order. A worker does not watch the stop: a share is
// bounded CPU work (a fetch's worth of chunks), and the loop waits for it before it settles.
func (j *shardJob) run(p *processor) {
	for _, i := range j.idx {
		j.res[i].out, j.res[i].err = p.transform(j.msgs[i], j.buf)
	}
	j.done <- struct{}{}
}

// transformAll runs every message of the batch through the steps, on the workers when
// there are several, and returns what each became, in the batch's order.
func (p *processor) transformAll(msgs []*delivery.Msg) []transformed {
	res := make([]transformed, len(msgs))
	for k := range p.bufs {
		p.bufs[k] = p.bufs[k][:0]
	}
	if p.pool == nil {
		for i, m := range msgs {
			res[i].out, res[i].err = p.transform(m, &p.bufs[0])
		}
		return res
	}
	pool := p.pool
	n := len(pool.jobs)
	for k := range pool.shards {
		pool.shards[k] = pool.shards[k][:0]
	}
	for i, m := range msgs {
		k := int(maphash.String(pool.seed, m.Subject) % uint64(n))
		pool.shards[k] = append(pool.shards[k], i)
	}
	sent := 0
	for k, idx := range pool.shards {
		if len(idx) == 0 {
			continue
		}
		pool.jobs[k] <- &shardJob{msgs: msgs, idx: idx, res: res, buf: &p.bufs[k], done: pool.done}
		sent++
	}
	for range sent {
		<-pool.done
	}
	return res
}

// releaseBufs drops the output buffers kept for the next batch (between batches they would
// hold live heap over memory_limit). The loop calls it: none of them is in use.
func (p *processor) releaseBufs() {
	clear(p.bufs)
	p.spare = nil
}
