package filemon

import (
	"bytes"
	"testing"
)

// BenchmarkSplitLines: the hot path of every file read, on 1 MiB of 200-byte lines.
func BenchmarkSplitLines(b *testing.B) {
	buf := bytes.Repeat(append(bytes.Repeat([]byte("x"), 199), '\n'), 5242)
	lines := len(buf) / 200
	out := make([]Line, 0, lines)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var n int
		out, n = SplitLines(buf, 1<<20, false, out[:0])
		if n != len(buf) || len(out) != lines {
			b.Fatalf("split %d lines, consumed %d", len(out), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
