package memlimit_test

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/memlimit"
)

func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, memlimit.SmallHeapGCPercent},
		{5 << 20, memlimit.SmallHeapGCPercent}, // idle with 1,000 tailed files
		{memlimit.SmallHeap - 1, memlimit.SmallHeapGCPercent},
		{memlimit.SmallHeap, 100},
		{56 << 20, 100}, // busy, at memory_limit's default
	} {
		if got := memlimit.GCPercent(tc.live); got != tc.want {
			t.Errorf("GCPercent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// gogc is the runtime's GOGC now.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// The tuner follows the live heap across collections, both ways, and Stop restores 100.
func TestGCTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	tuner := memlimit.StartGCTuner()
	defer tuner.Stop()
	wantGOGC := func(want int) {
		t.Helper()
		natstest.Eventually(t, 10*time.Second, func() error {
			runtime.GC() // the tuner runs after a collection, on the runtime's cleanup goroutine
			if p, g := tuner.Percent(), gogc(); p != want || g != want {
				return fmt.Errorf("tuner says %d, GOGC is %d, want %d", p, g, want)
			}
			return nil
		})
	}
	wantGOGC(memlimit.SmallHeapGCPercent)

	ballast := make([]byte, 2*memlimit.SmallHeap)
	wantGOGC(100)
	runtime.KeepAlive(ballast)
	ballast = nil
	wantGOGC(memlimit.SmallHeapGCPercent)

	tuner.Stop()
	if g := gogc(); g != 100 {
		t.Fatalf("GOGC %d after Stop, want 100", g)
	}
	runtime.GC()
	runtime.GC()
	if g := gogc(); g != 100 {
		t.Fatalf("GOGC %d after Stop and two collections, want 100", g)
	}
}
