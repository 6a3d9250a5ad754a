package filemon_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

// TestChurn creates, appends to, rotates and deletes 1,000 files (over ~10 s; a minute with
// LOGCAP_LONG=1). Afterwards the monitor holds nothing, goroutines and fds are back to the
// baseline, nothing is stored twice; goleak checks after stop (TestMain).
func TestChurn(t *testing.T) {
	d := 10 * time.Second
	if longRun() {
		d = time.Minute
	}
	h := newHarness(t)
	// the positions bucket is a stream with its own server goroutines and files: create it
	// before the baseline, as a previous run would have
	if _, err := h.js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: streams.PositionsBucket, History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	baseG, baseFDs := runtime.NumGoroutine(), openFDs(t)
	r := h.start(core.Options{Paths: []string{h.dir + "/*.log"}, StartAt: "beginning", CloseRemovedAfter: 200 * 1e6})
	startG := runtime.NumGoroutine()
	const files, live = 1000, 50
	step := d / files
	name := func(i int) string { return h.path(fmt.Sprintf("f%04d.log", i)) }
	written := 0
	for i := 0; i < files+live; i++ {
		if i < files {
			appendFile(t, name(i), numbered(fmt.Sprint("f", i), 0, 5))
			written += 5
		}
		if j := i - live/2; j >= 0 && j < files { // rotate: rename out of the glob, new file
			os.Rename(name(j), name(j)+".1")
			appendFile(t, name(j)+".1", numbered(fmt.Sprint("f", j), 5, 10))
			appendFile(t, name(j), numbered(fmt.Sprint("g", j), 0, 5))
			written += 10
		}
		if j := i - live; j >= 0 { // delete both
			os.Remove(name(j) + ".1")
			os.Remove(name(j))
		}
		time.Sleep(step) // pacing the workload, not synchronization
	}
	waitFor(t, 30*time.Second, func() error {
		if st := r.m.Stats(); st.Subjects != 0 || st.Open != 0 {
			return fmt.Errorf("monitor still holds %+v", st)
		}
		return nil
	})
	if g := runtime.NumGoroutine(); g > startG+2 {
		t.Errorf("goroutines %d after churn, %d when started (baseline %d)", g, startG, baseG)
	}
	stopG := runtime.NumGoroutine()
	r.stop(t)
	waitFor(t, 10*time.Second, func() error {
		if g, f := runtime.NumGoroutine(), openFDs(t); g > baseG || f > baseFDs {
			return fmt.Errorf("after stop: goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, f, baseFDs)
		}
		return nil
	})
	got := h.stored()
	seen, total := map[string]bool{}, 0
	for _, lines := range got {
		for _, l := range lines {
			if seen[l] {
				t.Fatalf("stored twice: %q", l)
			}
			seen[l] = true
			total++
			if !strings.HasPrefix(l, "f") && !strings.HasPrefix(l, "g") {
				t.Fatalf("unexpected %q", l)
			}
		}
	}
	t.Logf("churn over %v: %d of %d lines stored (files deleted %v after creation), none twice; goroutines: baseline %d, started %d, after churn %d, after stop back to baseline",
		d, total, written, step*live, baseG, startG, stopG)
}
