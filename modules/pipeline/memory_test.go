package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/pipeline"
)

// budget is memory_limit as a test sets it: over until released (the real one,
// memlimit.MemoryGate, reads the live heap, which a test cannot set).
type budget struct {
	released chan struct{}
	open     atomic.Bool
	waits    atomic.Int64
}

var _ pipeline.MemoryBudget = (*budget)(nil)

func newBudget() *budget { return &budget{released: make(chan struct{})} }

func (b *budget) Over() bool { return !b.open.Load() }

func (b *budget) Wait(ctx context.Context) error {
	b.waits.Add(1)
	select {
	case <-b.released:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *budget) release() {
	b.open.Store(true)
	close(b.released)
}

// Over memory_limit, a processor fetches nothing (its input stays in LOGS); under it again,
// everything goes through once.
func TestProcessorHeldByMemoryBudget(t *testing.T) {
	e := newEnv(t)
	cfg := parseConfig(t, "processors:\n  - {name: p1, input: logs.>, steps: [{json: {}}]}\n")
	b := newBudget()
	tun := fastTuning
	tun.Memory, tun.MemoryWait = b, time.Hour
	pl := run(t, e, cfg, tun)
	publish(t, e.js, "/a.log", jsonLines(100), 10)
	natstest.Eventually(t, 10*time.Second, func() error {
		if w := pl.Stats().Processors["p1"].MemoryWaits; w == 0 {
			return fmt.Errorf("processor not held yet")
		}
		return nil
	})
	if n, err := streamMsgs(e.js, "P1"); err != nil || n != 0 {
		t.Fatalf("held processor published %d chunks (%v), want 0", n, err)
	}
	if st := pl.Stats().Processors["p1"]; st.In != 0 || st.MemoryWaits != 1 {
		t.Fatalf("held processor: %+v, want nothing read and 1 wait", st)
	}
	b.release()
	waitMsgs(t, e.js, "P1", 10, 20*time.Second)
	if st := pl.Stats().Processors["p1"]; st.In != 100 || st.Out != 100 || st.MemoryWaits != 1 {
		t.Fatalf("released processor: %+v, want 100 entries in and out after 1 wait", st)
	}
}

// A budget that never opens (memory_limit below what logcap holds with nothing in flight)
// slows a processor to a batch per MemoryWait but does not stop it, and never holds a sink.
func TestMemoryBudgetNeverStopsThePipeline(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "out.log")
	cfg := parseConfig(t, fmt.Sprintf(`processors:
  - {name: p1, input: logs.>, steps: [{json: {}}]}
sinks:
  - {name: raw, type: file, input: logs.>, path: %q, format: raw}
`, out))
	b := newBudget() // never released
	tun := fastTuning
	tun.Memory, tun.MemoryWait = b, 20*time.Millisecond
	pl := run(t, e, cfg, tun)
	lines := jsonLines(50)
	publish(t, e.js, "/a.log", lines, 10)
	waitMsgs(t, e.js, "P1", 5, 20*time.Second)
	natstest.Eventually(t, 20*time.Second, func() error {
		if st := pl.Stats().Sinks["raw"]; st.Entries != 50 {
			return fmt.Errorf("sink wrote %d entries, want 50", st.Entries)
		}
		return nil
	})
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines, "\n") + "\n"; string(got) != want {
		t.Fatalf("sink file: %d bytes, want %d", len(got), len(want))
	}
	if st := pl.Stats().Processors["p1"]; st.In != 50 || st.MemoryWaits == 0 || b.waits.Load() != int64(st.MemoryWaits) {
		t.Fatalf("processor %+v with %d budget waits: want 50 entries after at least one wait, each on the budget", st, b.waits.Load())
	}
}
