package dockermon

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkDecoder: multiplexed frames of 200-byte timestamped lines, as a follow stream
// delivers them.
func BenchmarkDecoder(b *testing.B) {
	const lines = 5000
	var sb strings.Builder
	for range lines {
		sb.WriteString(frame(1, ts1+" "+strings.Repeat("x", 168)+"\n"))
	}
	in := []byte(sb.String())
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(in), false, 0)
		for range lines {
			if _, err := d.Next(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
