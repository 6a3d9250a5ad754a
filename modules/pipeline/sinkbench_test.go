package pipeline_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/vlogs"
	"github.com/logcap/logcap/modules/pipeline"
)

// BenchmarkSinkIntoVictoriaLogs measures one sink alone (LOGS filled first) writing 200-byte
// lines into a real VictoriaLogs on loopback, with the file sink of the same run beside it.
// It reports MB/s, the CPU of this process (the embedded server and the pipeline, as in the
// logcap binary) per GB, and the store's own CPU per GB. b.N is ignored beyond the first
// run: the measure is LOGCAP_SINK_BENCH_LINES lines (default 200,000).
func BenchmarkSinkIntoVictoriaLogs(b *testing.B) {
	const n, perChunk = 200_000, 5000
	lines := make([]string, n)
	for i := range lines {
		l := fmt.Sprintf("line %08d ", i)
		lines[i] = l + strings.Repeat("x", 199-len(l))
	}
	size := n * 200
	for _, bc := range []struct{ typ, url, extra string }{
		{"file", "", ""},
		{"loki", "/insert", ""},
		{"elasticsearch", "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp&_stream_fields=source", "index: logs"},
		{"http", "/insert/jsonline?_msg_field=message&_time_field=time&_stream_fields=source", ""},
	} {
		b.Run(bc.typ, func(b *testing.B) {
			var vl *vlogs.Server
			dest := fmt.Sprintf("path: %q", filepath.Join(b.TempDir(), "out.log"))
			if bc.typ != "file" {
				vl = vlogs.Start(b)
				dest = fmt.Sprintf("url: %q", vl.URL+bc.url)
			}
			if bc.extra != "" {
				dest += ", " + bc.extra
			}
			e := newEnv(b)
			publish(b, e.js, "/var/log/bench.log", lines, perChunk)
			cfg := parseConfig(b, fmt.Sprintf("sinks:\n  - { name: s, type: %s, input: logs.>, %s }\n", bc.typ, dest))
			b.ResetTimer()
			cpu0, store0 := selfCPU(b), storeCPU(b, vl)
			began := time.Now()
			pl, err := pipeline.New(cfg, e.client, zap.NewNop(), prometheus.NewRegistry(), fastTuning)
			if err != nil {
				b.Fatal(err)
			}
			if err := pl.Start(); err != nil {
				b.Fatal(err)
			}
			natstest.CheckFor(b, 5*time.Minute, time.Millisecond, func() error {
				if st := pl.Stats().Sinks["s"]; st.Entries < n {
					return fmt.Errorf("sink accepted %d of %d entries", st.Entries, n)
				}
				return nil
			})
			elapsed := time.Since(began)
			cpu, store := selfCPU(b)-cpu0, storeCPU(b, vl)-store0
			b.StopTimer()
			stop(b, pl, 5*time.Second)
			gb := float64(size) / 1e9
			b.ReportMetric(float64(size)/elapsed.Seconds()/1e6, "MB/s")
			b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
			b.ReportMetric(store.Seconds()/gb, "store-cpu-s/GB")
			if st := pl.Stats().Sinks["s"]; st.DeadLetters != 0 || st.Retries != 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func storeCPU(b *testing.B, vl *vlogs.Server) time.Duration {
	if vl == nil {
		return 0
	}
	d, err := vl.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
