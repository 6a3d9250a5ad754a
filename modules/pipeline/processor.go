package pipeline

import (
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
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

const (
	defaultAckWait           = 30 * time.Second
	defaultProcMaxDeliver    = 5
	procFetchMsgs            = 1000
	procFetchBytes           = 4 << 20
	procFetchWait            = time.Second
	procMaxAckPending        = 10000
	publishRetries           = 3
	procPublishRetryBackoff  = 200 * time.Millisecond
	processorRedeliveryDelay = 2 * time.Second
)

type processor struct {
	pl      *Pipeline
	cfg     config.Processor
	chain   *processors.Chain
	prefix  string   // subject prefix of the default output: lower(name)
	routes  []string // route step targets: more subject prefixes of the derived stream
	log     *zap.Logger
	js      jetstream.JetStream
	cons    jetstream.Consumer
	stream  string // the input's stream
	ackWait time.Duration
	maxDel  int

	in, out, dropped, chunks, dead atomic.Uint64
	mIn, mOut, mDropped, mErrors   prometheus.Counter
	mDead                          prometheus.Counter
	mPending                       prometheus.Gauge
}

func newProcessor(pl *Pipeline, pc config.Processor, chain *processors.Chain, routes []string) *processor {
	p := &processor{
		pl: pl, cfg: pc, chain: chain, prefix: strings.ToLower(pc.Name), routes: routes,
		log: pl.log.With(zap.String("processor", pc.Name)), ackWait: pc.AckWait.D(), maxDel: pc.MaxDeliver,
		mIn: pl.m.procIn.WithLabelValues(pc.Name), mOut: pl.m.procOut.WithLabelValues(pc.Name),
		mDropped: pl.m.procDropped.WithLabelValues(pc.Name), mErrors: pl.m.procErrors.WithLabelValues(pc.Name),
		mDead: pl.m.deadLetters.WithLabelValues(pc.Name), mPending: pl.m.pending.WithLabelValues(pc.Name),
	}
	if p.ackWait <= 0 {
		p.ackWait = defaultAckWait
	}
	if p.maxDel <= 0 {
		p.maxDel = defaultProcMaxDeliver
	}
	return p
}

// routeTargets lists the `to:` of the route steps: the derived stream must take them too.
func routeTargets(steps []config.Options) ([]string, error) {
	var out []string
	for i, st := range steps {
		typ, opts, err := st.Step()
		if err != nil || typ != "route" {
			continue
		}
		var o struct {
			If string `yaml:"if"`
			To string `yaml:"to"`
		}
		if err := opts.Decode(&o); err != nil {
			return nil, fmt.Errorf("steps[%d] (route): %w", i, err)
		}
		out = append(out, o.To)
	}
	return out, nil
}

// DerivedSpec is the derived stream of a processor: its name, subjects <lower(name)>.> plus
// one per route target, and the limits of the LOGS stream.
func DerivedSpec(cfg *config.Config, pc config.Processor) (streams.Spec, error) {
	routes, err := routeTargets(pc.Steps)
	if err != nil {
		return streams.Spec{}, err
	}
	subjects := []string{strings.ToLower(pc.Name) + ".>"}
	for _, r := range routes {
		subjects = append(subjects, r+".>")
	}
	name := pc.Stream
	if name == "" {
		name = strings.ToUpper(pc.Name)
	}
	return natsd.SpecFrom(config.StreamSpec{
		Name: name, MaxAge: cfg.Streams.Logs.MaxAge, MaxBytes: cfg.Streams.Logs.MaxBytes, MaxMsgSize: cfg.Streams.Logs.MaxMsgSize,
		Replicas: cfg.Streams.Logs.Replicas, DuplicateWindow: cfg.Streams.Logs.DuplicateWindow,
		Storage: cfg.Streams.Logs.Storage, Discard: cfg.Streams.Logs.Discard,
	}, subjects), nil
}

// consumerSpec is the processor's durable consumer on its input's stream.
func (p *processor) consumerSpec(stream string) streams.ConsumerSpec {
	return streams.ConsumerSpec{
		Stream: stream, Durable: p.cfg.Name, Filters: []string{p.cfg.Input}, AckWait: p.ackWait,
		// The pipeline dead-letters by itself; a JetStream max_deliver would stop delivering
		// a message silently.
		MaxDeliver: -1, MaxAckPending: procMaxAckPending,
	}
}

func (p *processor) setup(ctx context.Context) error {
	spec, err := DerivedSpec(p.pl.cfg, p.cfg)
	if err != nil {
		return err
	}
	if _, err := streams.Provision(ctx, p.js, spec); err != nil {
		return err
	}
	stream, err := p.js.StreamNameBySubject(ctx, p.cfg.Input)
	if err != nil {
		return fmt.Errorf("input %s: find its stream: %w", p.cfg.Input, err)
	}
	p.stream = stream
	p.cons, err = streams.EnsureConsumer(ctx, p.js, p.consumerSpec(stream))
	return err
}

func (p *processor) run(ctx context.Context) error {
	if err := p.pl.client.WaitReady(ctx); err != nil {
		return nil
	}
	p.js = p.pl.client.JS
	if err := setupLoop(ctx, p.log, "processor "+p.cfg.Name, p.setup); err != nil {
		return nil
	}
	p.log.Info("processor running", zap.String("input", p.cfg.Input), zap.String("input_stream", p.stream))
	opts := streams.FetchOpts{MaxMsgs: procFetchMsgs, MaxBytes: procFetchBytes, MaxWait: procFetchWait}
	for attempt := 0; ; {
		msgs, err := fetch(ctx, p.cons, opts)
		if ctx.Err() != nil {
			nakAll(msgs)
			return nil
		}
		if err != nil {
			p.log.Warn("fetch failed", zap.Error(err))
			if !sleep(ctx, sinks.Backoff(attempt, 100*time.Millisecond, 5*time.Second)) {
				return nil
			}
			attempt++
			continue
		}
		attempt = 0
		p.mPending.Set(pending(msgs))
		if len(msgs) > 0 {
			p.handle(ctx, msgs)
		}
	}
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
// and the kept ones out as one derived chunk per (input, output subject), all published
// asynchronously; an input is acked only once all of its outputs are stored.
func (p *processor) handle(parent context.Context, msgs []jetstream.Msg) {
	ctx, cancel := lifecycle.WithGrace(parent, p.pl.tuning.Grace)
	defer cancel()
	var outs []output
	settled := make([]bool, len(msgs)) // dead-lettered: no ack to give
	for i, m := range msgs {
		o, err := p.transform(m)
		if err != nil {
			settled[i] = true
			p.deadLetter(ctx, m, err)
			continue
		}
		for _, om := range o {
			outs = append(outs, output{in: i, msg: om})
		}
	}
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
		}
	}
	// A failed publish (a timeout, a reconnect) is sent again with the same msg id, so a
	// copy that was stored after all is not stored twice.
	for k := range outs {
		o := &outs[k]
		for try := 0; !o.ok && try < publishRetries && ctx.Err() == nil; try++ {
			if try > 0 && !sleep(ctx, procPublishRetryBackoff<<try) {
				break
			}
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := p.js.PublishMsg(pctx, o.msg)
			pcancel()
			o.ok, o.err = err == nil, err
		}
	}
	failed := make([]error, len(msgs))
	for _, o := range outs {
		if !o.ok && failed[o.in] == nil {
			failed[o.in] = o.err
		}
	}
	for i, m := range msgs {
		if settled[i] {
			continue
		}
		if failed[i] == nil {
			_ = m.Ack()
			continue
		}
		if ctx.Err() != nil {
			_ = m.Nak() // stopping: let another node (or the next start) take it at once
			continue
		}
		meta, err := m.Metadata()
		if err == nil && meta.NumDelivered >= uint64(p.maxDel) {
			p.deadLetter(ctx, m, fmt.Errorf("publish output (delivery %d of %d): %w", meta.NumDelivered, p.maxDel, failed[i]))
			continue
		}
		p.log.Warn("publishing output failed; input will be redelivered", zap.String("subject", m.Subject()), zap.Error(failed[i]))
		_ = m.NakWithDelay(processorRedeliveryDelay)
	}
}

// transform decodes one input message and runs its entries through the chain. It returns
// the derived chunks to publish (none when every entry was dropped); an error means the
// message is poison (undecodable, a step failed or panicked) and goes to dead letters.
func (p *processor) transform(m jetstream.Msg) ([]*nats.Msg, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	entries, err := streams.Entries(m.Subject(), m.Headers(), m.Data())
	if err != nil {
		return nil, err
	}
	p.chunks.Add(1)
	p.in.Add(uint64(len(entries)))
	p.mIn.Add(float64(len(entries)))
	if len(entries) == 0 {
		return nil, nil
	}
	// The output subject names the input's source: all entries of a chunk share it, and a
	// step that rewrites host or source must not split the chunk's output.
	kind, host, source := entries[0].Kind, entries[0].Host, entries[0].Source
	type group struct {
		route   string
		entries []event.Entry
	}
	var groups []group
	kept := 0
	for i := range entries {
		e := &entries[i]
		keep, err := p.chain.Process(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if !keep {
			continue
		}
		kept++
		gi := -1
		for j := range groups {
			if groups[j].route == e.Route {
				gi = j
				break
			}
		}
		if gi < 0 {
			groups = append(groups, group{route: e.Route})
			gi = len(groups) - 1
		}
		groups[gi].entries = append(groups[gi].entries, *e)
	}
	dropped := len(entries) - kept
	p.dropped.Add(uint64(dropped))
	p.mDropped.Add(float64(dropped))
	out := make([]*nats.Msg, 0, len(groups))
	for _, g := range groups {
		prefix, id := p.prefix, fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
		if g.route != "" {
			prefix, id = g.route, id+":"+g.route
		}
		msg, err := streams.DerivedMsg(streams.Subject(prefix, kind, host, source), id, g.entries)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	p.out.Add(uint64(kept))
	p.mOut.Add(float64(kept))
	return out, nil
}

func (p *processor) deadLetter(ctx context.Context, m jetstream.Msg, cause error) {
	p.mErrors.Inc()
	err := streams.DeadLetter(ctx, p.js, p.cfg.Name, m, fmt.Errorf("processor %s: %w", p.cfg.Name, cause))
	if err != nil {
		// Not stored as a dead letter: leave it unacked, JetStream redelivers it and the
		// next attempt dead-letters it again (the dead letter's msg id makes that safe).
		p.log.Error("dead letter failed; the message will be redelivered", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.NakWithDelay(processorRedeliveryDelay)
		return
	}
	p.dead.Add(1)
	p.mDead.Inc()
	p.log.Warn("input dead-lettered", zap.String("subject", m.Subject()), zap.Error(cause))
}
