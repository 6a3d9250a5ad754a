package processors_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/streams"
)

// BenchmarkChunkPath is a processor's and a raw sink's CPU per 1 MiB chunk of all-JSON
// 8-field lines, without NATS: the raw chunk decoded, the json step, the derived NDJSON
// encoded, and that decoded again as a file sink in raw format does (fields skipped) or as
// one that reads the fields. -benchmem gives the allocations per chunk (~4,900 entries).
func BenchmarkChunkPath(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20-300; i++ {
		fmt.Fprintf(&sb, `{"seq":"%010d","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":%d,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`+"\n", i, i%1000)
	}
	data := []byte(sb.String())
	c := &streams.Chunk{Kind: streams.KindFile, Host: "bench", Source: "/var/log/app/bench.log", Data: data,
		Lines: strings.Count(sb.String(), "\n"), ReadTime: time.Unix(1764251918, 0),
		File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", End: int64(len(data))}}
	raw := c.Msg()
	step, err := config.OptionsFrom(map[string]any{"json": map[string]any{}})
	if err != nil {
		b.Fatal(err)
	}
	chain, err := processors.BuildChain([]config.Options{step})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	format := streams.FormatLinesJSON
	process := func(b *testing.B) []byte {
		es, err := streams.Entries(raw.Subject, raw.Header, raw.Data)
		if err != nil {
			b.Fatal(err)
		}
		for i := range es {
			if _, err := chain.Process(&es[i]); err != nil {
				b.Fatal(err)
			}
		}
		if buf, format, err = streams.AppendDerived(buf[:0], streams.FormatLinesJSON, "parsed.file.bench.x", raw.Header, "LOGS:1", es); err != nil {
			b.Fatal(err)
		}
		return buf
	}
	derived := streams.DerivedMsgData("parsed.file.bench.x", "LOGS:1", format, c.Lines, append([]byte(nil), process(b)...))
	derived.Header[streams.HdrReadTime] = raw.Header[streams.HdrReadTime]
	for _, bc := range []struct {
		name string
		run  func(b *testing.B)
	}{
		{"processor", func(b *testing.B) { process(b) }},
		{"sink-raw", func(b *testing.B) {
			if _, _, err := streams.EntriesRawNoFields(derived.Subject, derived.Header, derived.Data); err != nil {
				b.Fatal(err)
			}
		}},
		{"sink-fields", func(b *testing.B) {
			if _, _, err := streams.EntriesRaw(derived.Subject, derived.Header, derived.Data); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				bc.run(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.Lines), "ns/entry")
		})
	}
}
