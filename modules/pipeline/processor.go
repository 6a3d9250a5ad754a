package pipeline

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/delivery"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/streams"
)

const (
	defaultAckWait        = streams.DefaultAckWait
	defaultProcMaxDeliver = 5
	procFetchMsgs         = 1000
	// procFetchBytes bounds a processor's input batch: its output is up to ~3 times bigger
	// (NDJSON, or lines+json with the fields written out; ~1.1 times for JSON lines through
	// a json step), and the batch, the output, the client's and the server's copies of it
	// are live at once.
	// At 4 MiB the json row (make bench) ran with a live heap of 86 MiB at most, over
	// memory_limit in 437 of 729 collections; at 1 MiB 80 MiB, 238 of 538 (GODEBUG=gctrace=1).
	procFetchBytes           = 1 << 20
	procFetchWait            = time.Second
	publishRetries           = 3
	processorRedeliveryDelay = 2 * time.Second
	// maxReusedBuf bounds the output buffer a processor keeps from one batch to the next:
	// a full fetch (1 MiB) of JSON lines makes up to ~3 MiB of output.
	maxReusedBuf = 4 << 20
	// procMemoryWait bounds how long a processor waits for the live heap to come under
	// memory_limit before it takes one batch anyway (waitMemory).
	procMemoryWait = 5 * time.Second
)

// publishRetry spaces the publishes of a derived chunk that failed (a timeout, a reconnect).
var publishRetry = retry.Policy{Initial: 400 * time.Millisecond, Max: 800 * time.Millisecond}

// processor is one processor's consumer: the delivery engine settles its input
// (delivery.Stage); this transforms each input chunk and publishes the derived ones.
type processor struct {
	pl     *Pipeline
	cfg    config.Processor
	chain  *processors.Chain
	stage  *delivery.Stage
	prefix string   // subject prefix of the default output: lower(name)
	routes []string // route step targets: more subject prefixes of the derived stream
	format string   // the derived chunks' (output_format)
	log    *zap.Logger
	js     jetstream.JetStream
	// bufs hold the payloads of every derived chunk of the batch in hand, one buffer per
	// transform worker, reused by the next batch once no publish of this one can read it
	// again (handle). pool is nil with one worker (procworkers.go).
	bufs [][]byte
	pool *procPool
	// settle finishes the batch in flight (procsettle.go); spare is the buffer set of the
	// batch before it, for the next batch to reuse.
	settle *settler
	spare  [][]byte

	in, out, dropped, chunks, dead atomic.Uint64
	memWaits                       atomic.Uint64 // fetches held back by memory_limit
	mIn, mOut, mDropped, mErrors   prometheus.Counter
	mDead, mMemWaits               prometheus.Counter
	mPending                       prometheus.Gauge
}

func newProcessor(pl *Pipeline, pc config.Processor, chain *processors.Chain, routes []string) *processor {
	p := &processor{
		pl: pl, cfg: pc, chain: chain, prefix: strings.ToLower(pc.Name), routes: routes, format: cmp.Or(pc.OutputFormat, streams.FormatLinesJSON),
		log: pl.log.With(zap.String("processor", pc.Name)),
		mIn: pl.m.procIn.WithLabelValues(pc.Name), mOut: pl.m.procOut.WithLabelValues(pc.Name),
		mDropped: pl.m.procDropped.WithLabelValues(pc.Name), mErrors: pl.m.procErrors.WithLabelValues(pc.Name),
		mDead: pl.m.deadLetters.WithLabelValues(pc.Name), mMemWaits: pl.m.procMemWaits.WithLabelValues(pc.Name), mPending: pl.m.pending.WithLabelValues(pc.Name),
	}
	p.stage = processorStage(pc, p.log, (*procObserver)(p))
	return p
}

// processorStage is the delivery policy of processor pc.
func processorStage(pc config.Processor, log *zap.Logger, obs delivery.Observer) *delivery.Stage {
	return &delivery.Stage{
		Name: pc.Name, Log: log, Obs: obs, Prefix: "processor " + pc.Name,
		MaxDeliver: orDefault(pc.MaxDeliver, defaultProcMaxDeliver), Redeliver: processorRedeliveryDelay,
		AckWait: orDefault(pc.AckWait.D(), defaultAckWait),
	}
}

func (p *processor) run(ctx context.Context) error {
	stop, err := p.startWorkers()
	if err != nil {
		return fmt.Errorf("processor %s: %w", p.cfg.Name, err)
	}
	defer stop()
	stopSettler, err := p.startSettler()
	if err != nil {
		return fmt.Errorf("processor %s: %w", p.cfg.Name, err)
	}
	defer stopSettler() // after the last batch: it waits for the one in flight
	return p.pl.consume(ctx, consumer{
		what: "processor " + p.cfg.Name, input: p.cfg.Input, stage: p.stage,
		fetch: streams.FetchOpts{MaxMsgs: procFetchMsgs, MaxBytes: procFetchBytes, MaxWait: procFetchWait},
		spec:  func(stream string) streams.ConsumerSpec { return streams.ProcessorConsumer(p.cfg, stream) },
		prepare: func(ctx context.Context, js jetstream.JetStream) error {
			spec, err := streams.DerivedSpec(p.pl.cfg, p.cfg)
			if err != nil {
				return err
			}
			p.js = js
			_, err = streams.Provision(ctx, js, spec)
			return err
		},
		running: func(stream string) {
			p.log.Info("processor running", zap.String("input", p.cfg.Input), zap.String("input_stream", stream))
		},
		before:   p.waitMemory,
		prefetch: p.overlap(),
		handle:   p.handle,
	})
}

// waitMemory holds the next fetch back while the live heap is over memory_limit, as the
// sources' publishes are: a processor turns each fetch into up to ~3 times as much output, the
// server's copy of it and the derived stream's blocks; ungated, the json row (make bench)
// once peaked at 144 MiB of RSS, where it usually stays at 120–124.
//
// It cannot wait on its own memory: with a budget the batches do not overlap (overlap), so
// it runs in the loop between batches, the last one published, acked and let go, and it
// lets go of the reused output buffers before waiting. (Were it to run in the prefetch
// goroutine, the batches in hand would go on without it and drop their buffers while the
// heap is over: memoryOver in handle and finish.)
// What brings the heap down goes on without it: the sinks are never held (they free memory
// by progressing), the store drops blocks unused for cache_expire, and the gate collects.
// Were the budget below what logcap holds with nothing in flight, the sources would stop,
// but the processor still moves one batch per Tuning.MemoryWait instead of stopping for good.
func (p *processor) waitMemory(ctx context.Context) error {
	if !p.memoryOver() {
		return nil
	}
	if !p.overlap() {
		p.releaseBufs() // the loop's goroutine, nothing in flight: drop them all
	}
	g := p.pl.tuning.Memory
	p.memWaits.Add(1)
	p.mMemWaits.Inc()
	wctx, cancel := context.WithTimeout(ctx, p.pl.tuning.MemoryWait)
	defer cancel()
	_ = g.Wait(wctx) // over the bound: take the batch anyway
	return ctx.Err()
}

// overlap reports whether the processor works on two batches at once (procsettle.go): only
// without a memory budget (memory_limit: 0). Measured (make bench's json8 row, 400 MB,
// runs of this and the sequential build interleaved on a shared 2-core machine, load 3–4):
// at memory_limit 0 the overlap gave 54.1–61.3 MB/s against 43.1–47.1 (27.0–30.7 CPU-s/GB
// against 29.1–32.0); at the default budget it made it slower, 14.3–14.7 MB/s against
// 17.2–17.7 (whole runs 26.9–34.0 s against 22.5–25.2 s), and since sealed blocks let go
// once read (third_party/nats-server/PATCH.md) no steadily faster: 17.1–20.5 against
// 17.6–18.6. There the heap, not the processor, sets the pace: the sources and the
// processor wait on the gate, and a second batch in hand (its input, its NDJSON, the
// client's copy) only keeps the heap over the budget longer.
func (p *processor) overlap() bool { return p.pl.tuning.Memory == nil }

// memoryOver reports whether the live heap is over memory_limit.
func (p *processor) memoryOver() bool {
	g := p.pl.tuning.Memory
	return g != nil && g.Over()
}

// output is one derived chunk: the entries of one input message for one output subject.
type output struct {
	in  int // index of the input message
	msg *nats.Msg
	fut jetstream.PubAckFuture
	ok  bool
	err error
}

// handle processes a fetched batch: every input message's entries go through the chain,
// and the kept ones out as one derived chunk per (input, output subject). The settler
// (procsettle.go) publishes them, once the batch before is settled, and acks an input only
// once all of its outputs are stored, while the loop fetches and transforms the next batch.
func (p *processor) handle(stop context.Context, msgs []*delivery.Msg) error {
	ctx, cancel := lifecycle.WithGrace(stop, p.pl.tuning.Grace)
	if p.memoryOver() {
		p.releaseBufs() // over memory_limit: no output buffer kept between batches
	}
	var outs []output
	settled := make([]bool, len(msgs)) // dead-lettered: no ack to give
	for i, r := range p.transformAll(msgs) {
		if r.err != nil {
			settled[i] = true
			_ = p.stage.DeadLetter(ctx, msgs[i], r.err)
			continue
		}
		for _, om := range r.out {
			outs = append(outs, output{in: i, msg: om})
		}
	}
	p.drain() // the batch before is stored (or given up on): these chunks come after it
	p.handOver(&inflightBatch{ctx: ctx, cancel: cancel, msgs: msgs, outs: outs, settled: settled})
	if !p.overlap() {
		p.drain() // one batch at a time (overlap)
	}
	return nil
}

// publish sends every output asynchronously and waits for the acks. A failed publish (a
// timeout, a reconnect) is sent again with the same msg id, so a copy that was stored after
// all is not stored twice. inFlight: an asynchronous publish was left without its answer.
func (p *processor) publish(ctx context.Context, outs []output) (inFlight bool) {
	for k := range outs {
		outs[k].fut, outs[k].err = p.js.PublishMsgAsync(outs[k].msg)
	}
	for k := range outs {
		o := &outs[k]
		if o.err != nil {
			continue
		}
		select {
		case <-o.fut.Ok():
			o.ok = true
		case o.err = <-o.fut.Err():
		case <-ctx.Done():
			o.err = ctx.Err()
			inFlight = true
		}
	}
	for k := range outs {
		o := &outs[k]
		for try := 0; !o.ok && try < publishRetries && ctx.Err() == nil; try++ {
			if try > 0 && !retry.Sleep(ctx, publishRetry.Delay(try-1)) {
				break
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := p.js.PublishMsg(pctx, o.msg)
			pcancel()
			o.ok, o.err = err == nil, err
		}
	}
	return inFlight
}

// transform decodes one input message and runs its entries through the chain. It returns
// the derived chunks to publish (none when every entry was dropped); an error means the
// message is poison (undecodable, a step failed or panicked) and goes to dead letters.
// It writes the output into *buf and may run on several workers at once (a buffer each).
func (p *processor) transform(m *delivery.Msg, buf *[]byte) ([]*nats.Msg, error) {
	entries, err := streams.Entries(m.Subject, m.Header, m.Data)
	if err != nil {
		return nil, err
	}
	p.chunks.Add(1)
	p.in.Add(uint64(len(entries)))
	p.mIn.Add(float64(len(entries)))
	if len(entries) == 0 {
		return nil, nil
	}
	groups, kept, origin, err := p.route(entries)
	if err != nil {
		return nil, err
	}
	dropped := len(entries) - kept
	p.dropped.Add(uint64(dropped))
	p.mDropped.Add(float64(dropped))
	// The output subject names the input's source: all entries of a chunk share it, and a
	// step that rewrites host or source must not split the chunk's output.
	kind, host, source := origin.Kind, origin.Host, origin.Source
	out := make([]*nats.Msg, 0, len(groups))
	for _, g := range groups {
		prefix, id := p.prefix, fmt.Sprintf("%s:%d", m.Stream, m.Seq)
		if g.route != "" {
			prefix, id = g.route, id+":"+g.route
		}
		start := len(*buf)
		subject := streams.Subject(prefix, kind, host, source)
		var format string
		if *buf, format, err = streams.AppendDerived(*buf, p.format, subject, m.Header, id, g.entries); err != nil {
			return nil, err
		}
		// The chunk's bytes are (*buf)[start:] of the array they were written to; a later
		// chunk that grows *buf moves on to a new array and leaves them be.
		data := (*buf)[start:len(*buf):len(*buf)]
		msg := streams.DerivedMsgData(subject, id, format, len(g.entries), data)
		for _, h := range streams.IdentityHeaders {
			if v := m.Header[h]; len(v) > 0 {
				msg.Header[h] = v
			}
		}
		out = append(out, msg)
	}
	p.out.Add(uint64(kept))
	p.mOut.Add(float64(kept))
	return out, nil
}

// routed is the kept entries of one chunk for one route ("": the default output).
type routed struct {
	route   string
	entries []event.Entry
}

// route runs the entries through the chain and groups the kept ones by route, in order.
// The kept entries are moved to the front of entries, in place: with no route step (one
// group, the default output) nothing is copied.
// origin is the first entry as the chain left it, which names the output subject.
func (p *processor) route(entries []event.Entry) (groups []routed, kept int, origin event.Entry, err error) {
	routes := false
	for i := range entries {
		e := &entries[i]
		keep, err := p.chain.Process(e)
		if err != nil {
			return nil, 0, origin, fmt.Errorf("entry %d: %w", i, err)
		}
		if i == 0 {
			origin = event.Entry{Kind: e.Kind, Host: e.Host, Source: e.Source}
		}
		if !keep {
			continue
		}
		routes = routes || e.Route != ""
		if kept != i {
			entries[kept] = *e
		}
		kept++
	}
	if kept == 0 {
		return nil, 0, origin, nil
	}
	if !routes {
		return []routed{{entries: entries[:kept]}}, kept, origin, nil
	}
	for _, e := range entries[:kept] {
		gi := -1
		for j := range groups {
			if groups[j].route == e.Route {
				gi = j
				break
			}
		}
		if gi < 0 {
			groups = append(groups, routed{route: e.Route})
			gi = len(groups) - 1
		}
		groups[gi].entries = append(groups[gi].entries, e)
	}
	return groups, kept, origin, nil
}

// procObserver counts what the engine reports for one processor.
type procObserver processor

func (o *procObserver) Fetched(pending uint64)             { o.mPending.Set(float64(pending)) }
func (o *procObserver) Wrote(int, int, time.Duration)      {}
func (o *procObserver) Retrying(int, time.Duration, error) {}
func (o *procObserver) Healthy(bool)                       {}

func (o *procObserver) DeadLettered() {
	o.mErrors.Inc()
	o.dead.Add(1)
	o.mDead.Inc()
}
