package memlimit

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// The collector's GOGC by live heap (GCTuner). Go's default, 100, lets the heap double
// before the next collection: for a busy logcap (a live heap of 30–56 MiB, near
// memory_limit) that room is what keeps the collector cheap, and the soft limit caps it
// anyway. For an idle one it is most of the footprint: with 1,000 tailed files the live
// heap is ~5 MiB, the heap grew to its ~12 MiB goal and peak RSS to 41–44 MiB (make bench,
// target 40). Below SmallHeap the tuner sets SmallHeapGCPercent: the heap goal drops by
// ~5 MiB, and a collection of a heap that small costs ~1 ms of CPU, run every few MB of
// allocation (at idle: seconds apart).
const (
	SmallHeap          = 16 << 20
	SmallHeapGCPercent = 25
	defaultGCPercent   = 100
)

// GCTuner sets GOGC after each collection from the live heap it marked: SmallHeapGCPercent
// while the live heap is under SmallHeap, 100 above. It runs on the runtime's cleanup
// goroutine (runtime.AddCleanup on a sentinel each cycle lets go of), so it costs nothing
// between collections and starts no goroutine of logcap's; Stop ends it.
type GCTuner struct {
	mu      sync.Mutex // Stop against a collection's tune
	stopped bool
	percent int // the GOGC set last
}

// StartGCTuner starts tuning GOGC; the caller skips it when the user set GOGC.
func StartGCTuner() *GCTuner {
	t := &GCTuner{percent: debug.SetGCPercent(defaultGCPercent)}
	t.percent = defaultGCPercent
	t.collected()
	return t
}

// Stop ends the tuning and restores GOGC 100. A nil tuner is stopped.
func (t *GCTuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(defaultGCPercent)
	}
}

// gcSentinel is garbage from birth: its cleanup marks the end of a collection. It is 16
// bytes so the tiny allocator (which may never free a block) does not take it.
type gcSentinel [2]uintptr

func (t *GCTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(t *GCTuner) { t.collected() }, t)
}

func (t *GCTuner) collected() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if p := GCPercent(liveHeap()); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
	t.arm()
}

// Percent is the GOGC the tuner set last.
func (t *GCTuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// GCPercent is the GOGC GCTuner sets for a live heap of live bytes.
func GCPercent(live uint64) int {
	if live < SmallHeap {
		return SmallHeapGCPercent
	}
	return defaultGCPercent
}
