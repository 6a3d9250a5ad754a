package filemon_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	core "github.com/logcap/logcap/sources/filemon"
)

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestManyFiles: 10,000 files in 100 directories with max_open_files 100. Descriptors stay
// under max_open_files + readers + a constant, goroutines under a constant.
func TestManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h := newHarness(t)
	dirs, per := 100, 100
	if raceEnabled {
		dirs = 20
	}
	for d := range dirs {
		for f := range per {
			appendFile(t, h.path(fmt.Sprintf("d%03d/f%03d.log", d, f)), fmt.Sprintf("line %d %d\n", d, f))
		}
	}
	baseFDs, baseG := openFDs(t), runtime.NumGoroutine()
	const maxOpen = 100
	r := h.start(core.Options{Paths: []string{h.dir + "/**/*.log"}, StartAt: "beginning", MaxOpenFiles: maxOpen})
	maxFDs, maxG := 0, 0
	sample := func() {
		maxFDs, maxG = max(maxFDs, openFDs(t)), max(maxG, runtime.NumGoroutine())
	}
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		sample()
		st := r.m.Stats()
		info, err := h.js.Stream(t.Context(), "LOGS")
		if err != nil {
			return err
		}
		n := info.CachedInfo().State.Msgs
		if st.Files < dirs*per || n < uint64(dirs*per) {
			return fmt.Errorf("files %d, chunks %d", st.Files, n)
		}
		return nil
	})
	// add lines to every file once more: the closed ones are reopened at their position
	for d := range dirs {
		for f := range per {
			appendFile(t, h.path(fmt.Sprintf("d%03d/f%03d.log", d, f)), "again\n")
		}
	}
	natstest.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		sample()
		info, err := h.js.Stream(t.Context(), "LOGS")
		if err != nil {
			return err
		}
		if n := info.CachedInfo().State.Msgs; n < uint64(2*dirs*per) {
			return fmt.Errorf("chunks %d", n)
		}
		return nil
	})
	got := h.stored()
	if len(got) != dirs*per {
		t.Fatalf("%d sources", len(got))
	}
	for p, lines := range got {
		if len(lines) != 2 || lines[1] != "again\n" {
			t.Fatalf("%s: %q", p, lines)
		}
	}
	// descriptors: the files, the fsnotify instance (+ its wake pipe/eventfd), slack for NATS
	const slack = 10
	t.Logf("fds: baseline %d, max %d (max_open_files %d); goroutines: baseline %d, max %d", baseFDs, maxFDs, maxOpen, baseG, maxG)
	if maxFDs > baseFDs+maxOpen+r.m.Readers()+slack {
		t.Errorf("fds peaked at %d: baseline %d + max_open_files %d + readers %d + %d", maxFDs, baseFDs, maxOpen, r.m.Readers(), slack)
	}
	if maxG > baseG+1+r.m.Readers()+slack {
		t.Errorf("goroutines peaked at %d, baseline %d", maxG, baseG)
	}
}
