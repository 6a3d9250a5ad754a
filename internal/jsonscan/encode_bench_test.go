package jsonscan_test

import (
	"testing"

	"github.com/logcap/logcap/internal/jsonscan"
)

// BenchmarkAppendMap8 is the fields object of an all-JSON 8-field line, as the json step
// makes it and a derived chunk's NDJSON writes it.
func BenchmarkAppendMap8(b *testing.B) {
	m, ok := jsonscan.ParseObject(`{"seq":"0000004242","level":"info","ts":"2026-11-27T13:56:37.123456Z","user":331,"method":"GET","status":200,"dur_ms":12.5,"msg":"request done lorem ipsum dolor sit amet consectetur"}`)
	if !ok {
		b.Fatal("parse")
	}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst, ok = jsonscan.AppendMap(dst[:0], m)
		if !ok {
			b.Fatal("encode")
		}
	}
}
