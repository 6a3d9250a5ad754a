// Package memlimit is logcap's memory policy (memory_limit): a gate the sources publish
// through, closed while the process's live heap is over the budget. It is process policy,
// not wire format, so it lives outside streams; the stream publisher takes any gate with a
// Wait method.
package memlimit

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryGate holds the sources' publishes back while the process's live heap is over a
// budget, so that reading stops and the files (and Docker's logs) stay the buffer.
//
// It is the backstop for the embedded nats-server: its file store keeps each message block's
// buffer in memory until the block is unused for nats.embedded.cache_expire (upstream: 10 s,
// which grew the heap without bound: 3.5 GiB of RSS for a 1.6 GB file), and a publish is
// acknowledged before that. With a short expiry the store holds about (write rate + lagging
// readers' rate) × (cache_expire + 0.1–0.3 s); the gate holds the sources back when that,
// plus everything else, passes the budget.
type MemoryGate struct {
	limit uint64

	mu     sync.Mutex // one collection at a time
	lastGC time.Time

	waiting  atomic.Int64 // publishes held back now
	heldNano atomic.Int64 // total time publishes were held back
}

// gateCheck is how often a held-back publish looks at the heap again, and gateGC how often
// it forces a collection: without allocation no collection runs, and the live heap it reads
// would never go down. The store releases a block 0.1–0.4 s after its last use, so a
// collection every second kept the sources waiting up to a second after the memory was free.
const (
	gateCheck = 50 * time.Millisecond
	gateGC    = 200 * time.Millisecond
)

// MinGCHeadroom is the least room SoftLimit leaves above the live-heap budget for garbage.
// With the live heap held near the budget, the collector runs every time that much has been
// allocated, and logcap allocates ~11 bytes per byte it carries (the store's block buffers,
// the client's and server's copies, the sinks' decoded batches). At 64MiB with a third
// (21 MiB) of room it ran so often — each run also emptying the store's buffer pool, so new
// blocks were fresh, zeroed and faulted in — that file → LOGS → file cost 9.5–12.2 CPU-s/GB
// against 6.0–6.3 with no limit; 56MiB with 40 MiB of room: 7.3–9.0 at 119–120 MiB of peak
// RSS (make bench; README, "Memory model").
const MinGCHeadroom = 40 << 20

// SoftLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit) for a live-heap
// budget of limit bytes: a third above it, and at least MinGCHeadroom above it.
func SoftLimit(limit uint64) uint64 {
	return limit + max(limit/3, MinGCHeadroom)
}

// NewMemoryGate returns a gate for limit bytes of live heap; 0 is no limit (a nil gate).
// The process should also set a soft memory limit above it (debug.SetMemoryLimit of
// SoftLimit), so that garbage — the store's released buffers — is collected before the heap
// grows far past it.
func NewMemoryGate(limit uint64) *MemoryGate {
	if limit == 0 {
		return nil
	}
	return &MemoryGate{limit: limit}
}

// Wait returns at once while the live heap is under the limit; otherwise it waits until it
// is, or until ctx is done. A nil gate never waits.
func (g *MemoryGate) Wait(ctx context.Context) error {
	if g == nil || liveHeap() < g.limit {
		return nil
	}
	g.waiting.Add(1)
	began := time.Now()
	defer func() {
		g.heldNano.Add(int64(time.Since(began)))
		g.waiting.Add(-1)
	}()
	t := time.NewTicker(gateCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		g.collect()
		if liveHeap() < g.limit {
			return nil
		}
	}
}

// Over reports whether the live heap (as of the last collection) is over the limit now: a
// caller that would let go of memory before waiting asks first. A nil gate is never over.
func (g *MemoryGate) Over() bool {
	return g != nil && liveHeap() >= g.limit
}

func (g *MemoryGate) collect() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.lastGC) >= gateGC {
		runtime.GC()
		g.lastGC = time.Now()
	}
}

// Drainers is the gate of the stages that drain LOGS into derived streams (processors): its
// limit is halfway between this gate's and the runtime's soft limit (SoftLimit), so the
// sources, which fill, are held back first, and the processors, which move what is already
// stored, only once the live heap is well over the budget and the collector's room is short.
// nil for a nil gate.
func (g *MemoryGate) Drainers() *MemoryGate {
	if g == nil {
		return nil
	}
	return &MemoryGate{limit: g.limit + (SoftLimit(g.limit)-g.limit)/2}
}

// Waiting is the number of publishes held back now.
func (g *MemoryGate) Waiting() int64 {
	if g == nil {
		return 0
	}
	return g.waiting.Load()
}

// Held is the total time publishes were held back.
func (g *MemoryGate) Held() time.Duration {
	if g == nil {
		return 0
	}
	return time.Duration(g.heldNano.Load())
}

// liveHeap is the heap marked live by the last collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
