package memlimit_test

import (
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/memlimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestMemoryGateOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an open gate does not even look at ctx
	for _, tc := range []struct {
		name string
		g    *memlimit.MemoryGate
	}{
		{"no limit", memlimit.NewMemoryGate(0)},
		{"under the limit", memlimit.NewMemoryGate(1 << 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.g.Wait(ctx); err != nil {
				t.Fatalf("Wait: %v, want nil at once", err)
			}
			if tc.g.Waiting() != 0 || tc.g.Held() != 0 {
				t.Errorf("waiting %d, held %v", tc.g.Waiting(), tc.g.Held())
			}
		})
	}
}

// Over the limit, a publish waits — until ctx ends, or until the heap is back under the
// limit, which the gate sees by collecting itself (nothing else allocates meanwhile).
func TestMemoryGateHoldsUntilTheHeapShrinks(t *testing.T) {
	ballast := make([]byte, 256<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	runtime.GC()
	g := memlimit.NewMemoryGate(liveHeap() - 128<<20)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait over the limit: %v, want the context's deadline", err)
	}

	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { errc <- g.Wait(context.Background()) })
	natstest.Eventually(t, 10*time.Second, func() error {
		if g.Waiting() != 1 {
			return errors.New("the publish is not held back yet")
		}
		return nil
	})
	runtime.KeepAlive(ballast)
	ballast = nil
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still held 10 s after the heap shrank")
	}
	if g.Waiting() != 0 || g.Held() < 200*time.Millisecond {
		t.Errorf("waiting %d, held %v; want 0 and at least the first wait", g.Waiting(), g.Held())
	}
}

// The soft limit leaves the collector room above the budget: a third of it, at least
// MinGCHeadroom (a small budget with a third of room made logcap collect all the time).
func TestSoftLimit(t *testing.T) {
	for _, tc := range []struct {
		limit, want uint64
	}{
		{32 << 20, 72 << 20},   // the smallest memory_limit
		{56 << 20, 96 << 20},   // the default
		{120 << 20, 160 << 20}, // where a third becomes more than the minimum
		{192 << 20, 256 << 20},
		{1 << 30, 1<<30 + (1<<30)/3},
	} {
		if got := memlimit.SoftLimit(tc.limit); got != tc.want {
			t.Errorf("SoftLimit(%d MiB) = %d MiB, want %d MiB", tc.limit>>20, got>>20, tc.want>>20)
		}
	}
}

// Over says what Wait would do, without waiting.
func TestOver(t *testing.T) {
	runtime.GC() // the live heap Over reads is the last collection's
	for _, tc := range []struct {
		name string
		g    *memlimit.MemoryGate
		want bool
	}{
		{"no limit", memlimit.NewMemoryGate(0), false},
		{"under", memlimit.NewMemoryGate(1 << 40), false},
		{"over", memlimit.NewMemoryGate(1), true},
	} {
		if got := tc.g.Over(); got != tc.want {
			t.Errorf("%s: Over() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The processors' gate closes later than the sources': halfway to the runtime's soft limit.
func TestDrainers(t *testing.T) {
	if g := (*memlimit.MemoryGate)(nil).Drainers(); g != nil {
		t.Fatalf("Drainers of no gate: %v, want nil", g)
	}
	runtime.GC()
	live := liveHeap()
	// sources over (limit just under the live heap), processors not: theirs is at least
	// 20 MiB higher (half of MinGCHeadroom)
	g := memlimit.NewMemoryGate(live - 1)
	if !g.Over() || g.Drainers().Over() {
		t.Fatalf("live %d, limit %d: sources over %v (want true), processors over %v (want false)",
			live, live-1, g.Over(), g.Drainers().Over())
	}
}
