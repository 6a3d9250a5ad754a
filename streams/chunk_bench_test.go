package streams_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

// BenchmarkChunkCodec: encode a 1 MiB file chunk of 200-byte lines to a message, decode it
// back and split it into entries, as a sink or processor does for every chunk.
func BenchmarkChunkCodec(b *testing.B) {
	data := bytes.Repeat(append(bytes.Repeat([]byte("x"), 199), '\n'), 5242)
	lines := len(data) / 200
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h", Source: "/var/log/app.log", Data: data, Lines: lines,
		ReadTime: time.Now(), File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", Start: 0, End: int64(len(data))}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		m := c.Msg()
		entries, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil || len(entries) != lines {
			b.Fatalf("%d entries, %v", len(entries), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
