package filemon_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/logcap/logcap/internal/natstest"
	core "github.com/logcap/logcap/sources/filemon"
)

// While fsnotify watches every directory of the globs, the full rescan runs only every 10th
// poll_interval (it cost 4.5% of a core for 10,000 idle files at 1s); where the watches
// cannot see a new match (a directory that does not exist yet, wildcards in the directory
// part), it still runs on every tick. Either way a new file is read.
func TestFullRescans(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pattern, file string // relative to the harness's directory
		mkdirFirst    string
		minScans      int // full scans over 20 ticks
		maxScans      int
	}{
		{name: "watched directory", pattern: "logs/*.log", file: "logs/new.log", mkdirFirst: "logs", minScans: 1, maxScans: 6},
		{name: "directory created later", pattern: "later/*.log", file: "later/new.log", minScans: 12, maxScans: 1000},
		{name: "wildcard directory", pattern: "*/*.log", file: "b/new.log", mkdirFirst: "a", minScans: 12, maxScans: 1000},
		{name: "double star", pattern: "deep/**/*.log", file: "deep/x/y/new.log", mkdirFirst: "deep", minScans: 1, maxScans: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.mkdirFirst != "" {
				h.path(tc.mkdirFirst + "/.keep")
			}
			r := h.start(core.Options{Paths: []string{filepath.Join(h.dir, tc.pattern)}, StartAt: "beginning"})
			before := r.m.Stats().Scans
			time.Sleep(2 * time.Second) // the measurement window: 20 ticks of 100ms
			scans := r.m.Stats().Scans - before
			if scans < tc.minScans || scans > tc.maxScans {
				t.Fatalf("%d full scans in 20 ticks, want %d..%d", scans, tc.minScans, tc.maxScans)
			}
			p := h.path(tc.file)
			appendFile(t, p, numbered("n", 0, 3))
			natstest.Eventually(t, 10*time.Second, func() error {
				if got := h.stored()[p]; len(got) != 3 {
					return fmt.Errorf("%s: %d lines stored, want 3", p, len(got))
				}
				return nil
			})
		})
	}
}
