package processors_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/streams"
)

// line8 is an all-JSON line of 8 fields (~215 B), the issue's "every line a JSON object of
// 8 fields" input; seq varies so that no two lines are equal.
func line8(seq int) string {
	return fmt.Sprintf(`{"seq":"%010d","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":%d,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`, seq, seq%977)
}

func chainOf(b *testing.B, src string) *processors.Chain {
	b.Helper()
	var doc struct {
		Steps []config.Options `yaml:"steps"`
	}
	if err := yaml.Unmarshal([]byte("steps:\n"+src), &doc); err != nil {
		b.Fatal(err)
	}
	c, err := processors.BuildChain(doc.Steps)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkProcessorPath is what a processor does to one 1 MiB-ish input chunk of all-JSON
// 8-field lines without NATS: decode the raw chunk into entries, run the chain, encode the
// derived NDJSON chunk, and decode it again as the sink does. allocs/op ÷ entries/op is the
// allocation count per entry of the whole path.
func BenchmarkProcessorPath(b *testing.B) {
	var sb strings.Builder
	n := 0
	for sb.Len() < 1<<20-300 {
		sb.WriteString(line8(n))
		sb.WriteByte('\n')
		n++
	}
	data := []byte(sb.String())
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h", Source: "/var/log/app.log", Data: data, Lines: n,
		ReadTime: time.Now(), File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", Start: 0, End: int64(len(data))}}
	m := c.Msg()
	for _, bc := range []struct{ name, steps string }{
		{"json", "  - json: {}\n"},
		{"json-drop-redact", "  - json: {}\n  - drop: 'fields.level == \"debug\"'\n  - redact: {fields: [password]}\n"},
	} {
		chain := chainOf(b, bc.steps)
		for _, part := range []string{"decode+chain+encode", "sink-decode"} {
			b.Run(bc.name+"/"+part, func(b *testing.B) {
				entries, err := streams.Entries(m.Subject, m.Header, m.Data)
				if err != nil {
					b.Fatal(err)
				}
				for i := range entries {
					if _, err := chain.Process(&entries[i]); err != nil {
						b.Fatal(err)
					}
				}
				derived, err := streams.DerivedMsg("parsed.file.h.x", "LOGS:1", entries)
				if err != nil {
					b.Fatal(err)
				}
				run := func() {
					if part == "sink-decode" {
						if _, err := streams.Entries(derived.Subject, derived.Header, derived.Data); err != nil {
							b.Fatal(err)
						}
						return
					}
					es, err := streams.Entries(m.Subject, m.Header, m.Data)
					if err != nil {
						b.Fatal(err)
					}
					for i := range es {
						if _, err := chain.Process(&es[i]); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := streams.DerivedMsg("parsed.file.h.x", "LOGS:1", es); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					run()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
				b.ReportMetric(testing.AllocsPerRun(2, run)/float64(n), "allocs/entry")
				b.ReportMetric(float64(len(derived.Data))/float64(len(data)), "derived/raw")
			})
		}
	}
}
