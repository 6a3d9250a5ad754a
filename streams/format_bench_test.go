package streams

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/jsonscan"
)

// BenchmarkDerivedFormats measures, on 1 MiB of all-JSON 8-field lines parsed as the json
// step parses them, what a derived chunk costs in bytes and CPU in today's format (NDJSON,
// one full event.Entry per line) and in two candidates, not on the wire (an exploration for
// the derived-format review of issue 17):
//   - lean: NDJSON without host, kind and source per entry (the chunk's subject and a header
//     would carry them once; an entry a step moved elsewhere would keep its own);
//   - split: the messages as raw lines (what `nats sub --raw` of LOGS shows), then one
//     fields object per entry, NDJSON, after a separator line.
//
// encode is the processor's side; raw is a sink writing raw lines (fields skipped); fields a
// sink reading the fields. bytes/entry is the derived chunk's size per entry.
func BenchmarkDerivedFormats(b *testing.B) {
	entries, size := benchParsedEntries(b)
	type format struct {
		name   string
		encode func(dst []byte, es []event.Entry) []byte
		decode func(b *testing.B, data []byte, fields bool)
	}
	for _, f := range []format{
		{"ndjson", func(dst []byte, es []event.Entry) []byte {
			out, err := AppendDerived(dst, "LOGS:1", es)
			if err != nil {
				b.Fatal(err)
			}
			return out
		}, func(b *testing.B, data []byte, fields bool) {
			if _, err := decodeNDJSON(data, !fields); err != nil {
				b.Fatal(err)
			}
		}},
		{"lean", appendLean, func(b *testing.B, data []byte, fields bool) {
			if _, err := decodeNDJSON(data, !fields); err != nil {
				b.Fatal(err)
			}
		}},
		{"split", appendSplit, decodeSplit},
	} {
		data := f.encode(nil, entries)
		perEntry := float64(len(data)) / float64(len(entries))
		for _, side := range []string{"encode", "raw", "fields"} {
			b.Run(f.name+"/"+side, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var buf []byte
				for b.Loop() {
					switch side {
					case "encode":
						buf = f.encode(buf[:0], entries)
					default:
						f.decode(b, data, side == "fields")
					}
				}
				b.ReportMetric(perEntry, "bytes/entry")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(entries)), "ns/entry")
			})
		}
	}
}

// benchParsedEntries is a 1 MiB chunk of 8-field JSON lines, decoded and parsed.
func benchParsedEntries(b *testing.B) ([]event.Entry, int) {
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
		f, ok := jsonscan.ParseObject(es[i].Message)
		if !ok {
			b.Fatal("parse")
		}
		es[i].Fields = f
	}
	return es, len(data)
}

// appendLean is NDJSON without the entries' host, kind and source.
func appendLean(dst []byte, es []event.Entry) []byte {
	for i := range es {
		e := es[i]
		e.Host, e.Kind, e.Source = "", "", ""
		n := len(dst)
		dst = append(dst, `{"time":`...)
		dst, _ = jsonscan.AppendTime(dst, e.Time)
		dst = append(dst, `,"message":`...)
		dst = jsonscan.AppendString(dst, e.Message)
		dst = append(dst, `,"fields":`...)
		var ok bool
		if dst, ok = jsonscan.AppendMap(dst, e.Fields); !ok {
			dst = dst[:n]
		}
		dst = append(dst, '}', '\n')
	}
	return dst
}

// splitSep separates the raw messages from the fields section of a split chunk.
const splitSep = "\n--- fields\n"

// appendSplit is the messages as lines, then the fields, one object per line. (A message
// holding a newline or the separator would need the entry boundaries in a header, as
// multiline raw chunks have: not measured here.)
func appendSplit(dst []byte, es []event.Entry) []byte {
	for i := range es {
		dst = append(dst, es[i].Message...)
		dst = append(dst, '\n')
	}
	dst = append(dst, splitSep[1:]...)
	for i := range es {
		dst, _ = jsonscan.AppendMap(dst, es[i].Fields)
		dst = append(dst, '\n')
	}
	return dst
}

// decodeSplit reads a split chunk: the messages as a raw chunk's lines, the fields (when
// asked for) with jsonscan.
func decodeSplit(b *testing.B, data []byte, fields bool) {
	s := payloadString(data)
	cut := strings.Index(s, splitSep)
	if cut < 0 {
		b.Fatal("no separator")
	}
	msgs, rest := s[:cut+1], s[cut+len(splitSep):]
	es := make([]event.Entry, 0, strings.Count(msgs, "\n"))
	for len(msgs) > 0 {
		n := strings.IndexByte(msgs, '\n')
		es = append(es, event.Entry{Message: msgs[:n]})
		msgs = msgs[n+1:]
	}
	if !fields {
		return
	}
	var d jsonscan.Decoder
	for i := range es {
		n := strings.IndexByte(rest, '\n')
		d.Reset(rest[:n])
		m, ok := d.Object()
		if !ok {
			b.Fatal("fields")
		}
		es[i].Fields = m
		rest = rest[n+1:]
	}
}
