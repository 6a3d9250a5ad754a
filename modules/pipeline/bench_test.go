package pipeline_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/pipeline"
)

// BenchmarkProcessorChain measures entries/s end to end (LOGS → consume → steps → publish
// to the derived stream → ack) through json → drop → redact on 170–190-byte JSON lines, next to
// the ceiling of the same machinery with no step at all (consume → publish pass-through),
// both in the same run. b.N is the number of entries.
func BenchmarkProcessorChain(b *testing.B) {
	for _, bc := range []struct {
		name  string
		steps string
	}{
		{"passthrough", ""},
		{"json-drop-redact", `
      - json: {}
      - drop: 'fields.level == "debug"'
      - redact: { fields: [password] }`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const perChunk = 500
			n := max(b.N, perChunk)
			e := newEnv(b)
			lines := jsonLines(n)
			size := 0
			for _, l := range lines {
				size += len(l) + 1
			}
			publish(b, e.js, "/bench.log", lines, perChunk)
			var cfg *config.Config
			if bc.steps == "" {
				// A chain of no steps: config validation wants one, the runtime does not.
				cfg = parseConfig(b, "processors:\n  - { name: parsed, input: logs.>, steps: [json: {}] }\n")
				cfg.Processors[0].Steps = nil
			} else {
				cfg = parseConfig(b, "processors:\n  - name: parsed\n    input: logs.>\n    steps:"+bc.steps+"\n")
			}
			runProcessorBench(b, e, cfg, uint64((n+perChunk-1)/perChunk), n, size)
		})
	}
}

// BenchmarkProcessorWorkers is BenchmarkProcessorChain's json → drop → redact over four
// sources already in LOGS, with processors[].workers 1 and GOMAXPROCS side by side: what
// the transform workers give the processor alone (no capture, no sink beside it).
func BenchmarkProcessorWorkers(b *testing.B) {
	for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			const perChunk, sources = 500, 4
			n := max(b.N, perChunk*sources)
			n -= n % (perChunk * sources)
			e := newEnv(b)
			lines := jsonLines(n)
			size := 0
			for _, l := range lines {
				size += len(l) + 1
			}
			per := n / sources
			for k := range sources {
				publishIno(b, e.js, fmt.Sprintf("/bench%d.log", k), uint64(10+k), lines[k*per:(k+1)*per], perChunk)
			}
			cfg := parseConfig(b, fmt.Sprintf(workersYAML, w))
			runProcessorBench(b, e, cfg, uint64(n/perChunk), n, size)
		})
	}
}

// runProcessorBench times cfg's processor from its start until PARSED holds chunks derived
// chunks, and reports n entries of size bytes per second.
func runProcessorBench(b *testing.B, e *env, cfg *config.Config, chunks uint64, n, size int) {
	b.Helper()
	b.ResetTimer()
	began := time.Now()
	pl, err := pipeline.New(cfg, e.client, zap.NewNop(), prometheus.NewRegistry(), fastTuning)
	if err != nil {
		b.Fatal(err)
	}
	if err := pl.Start(); err != nil {
		b.Fatal(err)
	}
	natstest.CheckFor(b, 5*time.Minute, time.Millisecond, func() error {
		if got, err := streamMsgs(e.js, "PARSED"); err != nil || got != chunks {
			return fmt.Errorf("%d of %d chunks (%v)", got, chunks, err)
		}
		return nil
	})
	elapsed := time.Since(began)
	b.StopTimer()
	stop(b, pl, 5*time.Second)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(float64(size)/elapsed.Seconds()/1e6, "MB/s")
}
