package streams_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// benchBytes of 200-byte lines go through each variant, so MB/s compare like for like.
const benchBytes = 128 << 20

func benchLines() []byte {
	line := bytes.Repeat([]byte("x"), 199)
	line = append(line, '\n')
	return bytes.Repeat(line, benchBytes/200)
}

func benchServer(b *testing.B) jetstream.JetStream {
	s := natstest.RunServer(b, nil)
	_, js := natstest.Connect(b, s)
	if _, err := streams.Provision(context.Background(), js, logsSpec()); err != nil {
		b.Fatal(err)
	}
	return js
}

func report(b *testing.B, began time.Time, n int) {
	secs := time.Since(began).Seconds()
	b.ReportMetric(float64(n)/secs/1e6, "MB/s")
	b.ReportMetric(float64(n)/200/secs, "lines/s")
}

// BenchmarkPublisher: one source through streams.Publisher (one chunk in flight, expected
// last subject sequence, msg id), at several chunk sizes.
func BenchmarkPublisher(b *testing.B) {
	data := benchLines()
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dKiB", size>>10), func(b *testing.B) {
			for range b.N {
				js := benchServer(b)
				subj := streams.SourceSubject(streams.KindFile, "h", "/bench.log")
				p := streams.NewPublisher(js, "LOGS", subj, 0)
				began := time.Now()
				for off := 0; off < len(data); off += size {
					end := min(off+size, len(data))
					c := &streams.Chunk{Kind: streams.KindFile, Host: "h", Source: "/bench.log", Data: data[off:end],
						Lines: (end - off) / 200, File: &streams.FilePos{Dev: 1, Ino: 1, Fingerprint: "f", Start: int64(off), End: int64(end)}}
					if _, err := p.Publish(context.Background(), c.Msg()); err != nil {
						b.Fatal(err)
					}
				}
				report(b, began, len(data))
			}
		})
	}
}

// BenchmarkRawPublishAsync is the ceiling: jetstream.PublishAsync of the same bytes in the
// same chunks, no conditions, up to 64 in flight.
func BenchmarkRawPublishAsync(b *testing.B) {
	data := benchLines()
	for _, size := range []int{200, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("msg=%dB", size), func(b *testing.B) {
			for range b.N {
				js := benchServer(b)
				n := len(data)
				if size == 200 {
					n = 16 << 20 // one message per line is slow: a smaller sample
				}
				began := time.Now()
				for off := 0; off < n; off += size {
					m := nats.NewMsg("logs.file.h.raw")
					m.Data = data[off:min(off+size, n)]
					if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-js.PublishAsyncComplete():
				case <-time.After(time.Minute):
					b.Fatal("async publishes not complete after a minute")
				}
				report(b, began, n)
			}
		})
	}
}
