// Package pipeline runs logcap's processors and sinks: each is a durable JetStream pull
// consumer whose loop this module owns. A processor republishes what its steps keep into a
// derived stream; a sink writes batches to a destination. Both ack an input message only
// after their output is durable (a publish ack, the destination's success answer).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/memlimit"
	"github.com/logcap/logcap/modules/admin"
	"github.com/logcap/logcap/modules/lifecycle"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/sinks"
)

// Module runs every configured processor and sink. It depends on natsd's *Client, so it
// stops before the connection drains (fx stops in reverse).
var Module = fx.Module("pipeline", fx.Invoke(start))

// Tuning holds the pipeline's timing knobs. The zero value means the defaults; tests supply
// a faster one with fx.Supply.
type Tuning struct {
	// BackoffBase and BackoffMax bound the delay between a sink's retries of the batch in
	// hand, and between its health probes while the destination is down.
	BackoffBase, BackoffMax time.Duration
	// Grace is how long a stopping sink or processor may take to finish the batch in hand
	// before its write is cancelled (default: shutdown_timeout / 3).
	Grace time.Duration
	// Memory, if set, is the memory budget of the processors (memory_limit's gate,
	// Drainers: over it by half the collector's room): a processor waits on it before each
	// fetch, holding nothing (processor.waitMemory). Sinks never wait on it: they free
	// memory by progressing.
	Memory MemoryBudget
	// MemoryWait bounds one wait on Memory (default procMemoryWait).
	MemoryWait time.Duration
}

// MemoryBudget is memory_limit as the processors see it (*memlimit.MemoryGate).
type MemoryBudget interface {
	// Over reports whether the live heap is over the budget now.
	Over() bool
	// Wait returns once it is not (or ctx is done).
	Wait(ctx context.Context) error
}

func (t Tuning) withDefaults(cfg *config.Config) Tuning {
	if t.BackoffBase <= 0 {
		t.BackoffBase = 500 * time.Millisecond
	}
	if t.BackoffMax <= 0 {
		t.BackoffMax = 30 * time.Second
	}
	if t.MemoryWait <= 0 {
		t.MemoryWait = procMemoryWait
	}
	if t.Grace <= 0 {
		t.Grace = cfg.ShutdownTimeout.D() / 3
		if t.Grace <= 0 {
			t.Grace = 3 * time.Second
		}
	}
	return t
}

type params struct {
	fx.In
	LC     fx.Lifecycle
	Cfg    *config.Config
	Client *natsd.Client
	Log    *zap.Logger
	Reg    prometheus.Registerer
	Tuning *Tuning              `optional:"true"`
	Memory *memlimit.MemoryGate `optional:"true"`
	Checks *admin.Checks        `optional:"true"` // readiness: a stage that cannot set up says so
}

func start(p params) error {
	if len(p.Cfg.Processors) == 0 && len(p.Cfg.Sinks) == 0 {
		return nil
	}
	var t Tuning
	if p.Tuning != nil {
		t = *p.Tuning
	}
	if t.Memory == nil && p.Memory != nil { // a nil *MemoryGate is no budget: leave Memory nil
		t.Memory = p.Memory.Drainers()
	}
	pl, err := New(p.Cfg, p.Client, p.Log, p.Reg, t)
	if err != nil {
		return err
	}
	if p.Checks != nil {
		p.Checks.Add(pl.setup.NotReady)
	}
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error { return pl.Start() },
		OnStop:  pl.Stop,
	})
	return nil
}

// Pipeline is the set of running processors and sinks of one logcap node.
type Pipeline struct {
	cfg    *config.Config
	client *natsd.Client
	log    *zap.Logger
	group  *lifecycle.Group
	procs  []*processor
	sinks  []*sinkRunner
	m      *metrics
	tuning Tuning
	start  bool
	setup  setupFailures
}

// New builds every processor chain and sink of cfg (nothing runs yet). Configuration errors
// are returned here, so a bad config fails logcap at start, not later.
func New(cfg *config.Config, client *natsd.Client, log *zap.Logger, reg prometheus.Registerer, t Tuning) (*Pipeline, error) {
	log = log.Named("pipeline")
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	pl := &Pipeline{cfg: cfg, client: client, log: log, group: lifecycle.New("pipeline", log), m: m, tuning: t.withDefaults(cfg)}
	var errs []error
	for i := range cfg.Processors {
		pc := cfg.Processors[i]
		chain, err := processors.BuildChain(pc.Steps)
		if err != nil {
			errs = append(errs, fmt.Errorf("processor %s: %w", pc.Name, err))
			continue
		}
		routes, err := pc.Routes()
		if err != nil {
			errs = append(errs, fmt.Errorf("processor %s: %w", pc.Name, err))
			continue
		}
		p := newProcessor(pl, pc, chain, routes)
		pl.procs = append(pl.procs, p)
		m.stepCollector.add(pc.Name, chain)
	}
	for i := range cfg.Sinks {
		sc := cfg.Sinks[i]
		s, err := sinks.New(sc.Type, sc.Name, sc.Options)
		if err == nil {
			if err = checkConcurrency(sc, s); err != nil {
				_ = s.Close()
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", sc.Name, err))
			continue
		}
		pl.sinks = append(pl.sinks, newSinkRunner(pl, sc, s))
	}
	if err := errors.Join(errs...); err != nil {
		pl.closeSinks()
		return nil, err
	}
	return pl, nil
}

// Start runs one goroutine per processor and per sink. Each waits for NATS to be ready,
// provisions what it needs (retrying: a sink's input may be a stream another processor
// provisions), then consumes until Stop.
func (pl *Pipeline) Start() error {
	pl.start = true
	for _, p := range pl.procs {
		if err := pl.group.Go("pipeline: processor "+p.cfg.Name, p.run); err != nil {
			return err
		}
	}
	for _, s := range pl.sinks {
		s.started = true
		if err := pl.group.Go("pipeline: sink "+s.cfg.Name, s.run); err != nil {
			s.started = false
			return err
		}
	}
	return nil
}

// Stop stops fetching, lets every batch in hand finish within the grace period, waits for
// the loops (bounded by ctx) and closes the sinks whose loops never ran.
func (pl *Pipeline) Stop(ctx context.Context) error {
	err := pl.group.Stop(ctx)
	pl.closeSinks()
	return err
}

func (pl *Pipeline) closeSinks() {
	for _, s := range pl.sinks {
		if !s.started {
			_ = s.sink.Close()
		}
	}
}

// Stats reports what each processor and sink did so far (for tests).
type Stats struct {
	// Processors by name: entries in, out, dropped; chunks dead-lettered; fetches held back
	// by memory_limit.
	Processors map[string]ProcessorStats
	// Sinks by name: entries delivered, chunks dead-lettered.
	Sinks map[string]SinkStats
}

// ProcessorStats are one processor's counters.
type ProcessorStats struct{ In, Out, Dropped, Chunks, DeadLetters, MemoryWaits uint64 }

// SinkStats are one sink's counters.
type SinkStats struct{ Entries, Batches, Retries, DeadLetters uint64 }

// Stats returns a snapshot of the counters.
func (pl *Pipeline) Stats() Stats {
	st := Stats{Processors: map[string]ProcessorStats{}, Sinks: map[string]SinkStats{}}
	for _, p := range pl.procs {
		st.Processors[p.cfg.Name] = ProcessorStats{In: p.in.Load(), Out: p.out.Load(), Dropped: p.dropped.Load(), Chunks: p.chunks.Load(), DeadLetters: p.dead.Load(), MemoryWaits: p.memWaits.Load()}
	}
	for _, s := range pl.sinks {
		st.Sinks[s.cfg.Name] = SinkStats{Entries: s.entries.Load(), Batches: s.batches.Load(), Retries: s.retries.Load(), DeadLetters: s.dead.Load()}
	}
	return st
}
