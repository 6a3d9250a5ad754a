package streams

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// BenchmarkDerivedFormats measures, on 1 MiB of all-JSON 8-field lines parsed as the json
// step parses them, what a derived chunk costs in bytes and CPU in each format: NDJSON (one
// full event.Entry per line, logcap's format before issue 17) and lines+json (the default:
// the messages as lines, then the rest of each entry). encode is the processor's side; raw
// a sink writing raw lines (fields skipped); fields a sink reading the fields.
// bytes/entry is the derived chunk's size per entry.
func BenchmarkDerivedFormats(b *testing.B) {
	entries, h, size := benchParsedEntries(b)
	subject := Subject("parsed", KindFile, "bench", "/var/log/app/bench.log")
	for _, format := range []string{FormatNDJSON, FormatLinesJSON} {
		data, got, err := AppendDerived(nil, format, subject, h, "LOGS:1", entries)
		if err != nil || got != format {
			b.Fatalf("%s: wrote %s, %v", format, got, err)
		}
		m := DerivedMsgData(subject, "LOGS:1", format, len(entries), data)
		m.Header[HdrReadTime] = h[HdrReadTime]
		perEntry := float64(len(data)) / float64(len(entries))
		for _, side := range []string{"encode", "raw", "fields"} {
			b.Run(format+"/"+side, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var buf []byte
				for b.Loop() {
					var err error
					switch side {
					case "encode":
						buf, _, err = AppendDerived(buf[:0], format, subject, h, "LOGS:1", entries)
					case "raw":
						_, _, err = EntriesRawNoFields(m.Subject, m.Header, m.Data)
					default:
						_, err = Entries(m.Subject, m.Header, m.Data)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(perEntry, "bytes/entry")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(entries)), "ns/entry")
			})
		}
	}
}

// benchParsedEntries is a 1 MiB chunk of 8-field JSON lines, decoded and parsed as the json
// step does, and the chunk's headers.
func benchParsedEntries(b *testing.B) ([]event.Entry, nats.Header, int) {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20-300; i++ {
		fmt.Fprintf(&sb, `{"seq":"%010d","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":%d,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`+"\n", i, i%1000)
	}
	data := []byte(sb.String())
	c := &Chunk{Kind: KindFile, Host: "bench", Source: "/var/log/app/bench.log", Data: data, Lines: bytes.Count(data, []byte{'\n'}),
		ReadTime: time.Unix(1764251918, 0), File: &FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", End: int64(len(data))}}
	m := c.Msg()
	es, err := Entries(m.Subject, m.Header, m.Data)
	if err != nil {
		b.Fatal(err)
	}
	for i := range es {
		f, err := jsonscan.Parse(es[i].Message)
		if err != nil {
			b.Fatal(err)
		}
		es[i].Fields, es[i].FieldsFrom = f, event.FieldsFromJSON
	}
	return es, m.Header, len(data)
}
