package kubernetes

import (
	"fmt"
	"testing"
	"time"

	"github.com/logcap/logcap/streams"
)

// criInput is n CRI lines of 200-byte messages, stdout and stderr alternating.
func criInput(n int) []byte {
	var b []byte
	for i := range n {
		st := "stdout"
		if i%2 == 1 {
			st = "stderr"
		}
		b = fmt.Appendf(b, "2026-12-06T07:00:00.%09dZ %s F %0200d\n", i, st, i)
	}
	return b
}

func BenchmarkCRIFrame(b *testing.B) {
	in := criInput(4000) // ~1 MiB: one chunk
	var dst []byte
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		fr := CRI{}.Frame(in, false, 1<<20, 2<<20, dst[:0])
		dst = fr.Data
	}
}

// BenchmarkCRIDecode is what every consumer of a Kubernetes chunk pays per chunk.
func BenchmarkCRIDecode(b *testing.B) {
	in := criInput(4000)
	ref := streams.PodRef{Namespace: "ns", Pod: "p", UID: "u", Container: "c", Restart: "0"}
	c := &streams.Chunk{Kind: streams.KindKubernetes, Host: "h", Source: ref.Source(), Data: in, Lines: 4000, K8s: &ref,
		ReadTime: time.Now(), File: &streams.FilePos{End: int64(len(in))}}
	m := c.Msg()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := streams.EntriesRaw(m.Subject, m.Header, m.Data); err != nil {
			b.Fatal(err)
		}
	}
}
