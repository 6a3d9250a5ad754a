package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// 10,000 chunks through the Publisher into a running app; the app stops and starts again on
// the same data_dir; a durable consumer reads every chunk back, in order, none twice.
func TestPublishRestartAppConsume(t *testing.T) {
	cfg := testConfig(t)
	const n = 10000
	src := "/var/log/app.log"
	subj := streams.SourceSubject(streams.KindFile, cfg.Node, src)

	withApp := func(f func(c *natsd.Client)) {
		var c *natsd.Client
		a, err := start(t, cfg, fx.Populate(&c))
		if err != nil {
			t.Fatal(err)
		}
		f(c)
		stopWithin(t, a, cfg.ShutdownTimeout.D())
	}
	withApp(func(c *natsd.Client) {
		p := streams.NewPublisher(c.JS, c.LogsStream, subj, 0)
		var off int64
		for i := range n {
			data := fmt.Appendf(nil, "line %d\n", i)
			ch := &streams.Chunk{Kind: streams.KindFile, Host: cfg.Node, Source: src, Data: data, Lines: 1,
				File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", Start: off, End: off + int64(len(data))}}
			off += int64(len(data))
			if _, err := p.Publish(context.Background(), ch.Msg()); err != nil {
				t.Fatalf("chunk %d: %v", i, err)
			}
		}
	})
	withApp(func(c *natsd.Client) {
		ctx := context.Background()
		cons, err := streams.EnsureConsumer(ctx, c.JS, streams.ConsumerSpec{
			Stream: c.LogsStream, Durable: "reader", Filters: []string{"logs.>"}, AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 1000,
		})
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		for next < n {
			msgs, err := streams.Fetch(ctx, cons, streams.FetchOpts{MaxMsgs: 1000, MaxBytes: 1 << 20, MaxWait: time.Second})
			if err != nil || len(msgs) == 0 {
				t.Fatalf("fetch after %d of %d: %d messages, %v", next, n, len(msgs), err)
			}
			for _, m := range msgs {
				if want := fmt.Sprintf("line %d\n", next); string(m.Data()) != want {
					t.Fatalf("message %d: %q, want %q", next, m.Data(), want)
				}
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
				next++
			}
		}
		msgs, err := streams.Fetch(ctx, cons, streams.FetchOpts{MaxMsgs: 10, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
		if err != nil || len(msgs) != 0 {
			t.Fatalf("after all %d: %d more, %v", n, len(msgs), err)
		}
	})
}
