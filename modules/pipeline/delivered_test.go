package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// TestSinkDeliveredPosition: an http sink records its consumer's ack floor in the positions
// bucket (streams.SinkPosition) after each batch's acks; a restart whose consumer lost the
// last acks (the embedded server writes them lazily: a kill -9) skips, without writing, the
// messages at or below the recorded floor, but only while the stream still holds the
// recorded message there and the consumer is the one the record was made for. The lost acks
// are played by a consumer created before the sink starts, with a record written by hand.
func TestSinkDeliveredPosition(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name        string
		concurrency int
		rec         func(r *streams.SinkPosition) // nil: no record
		written     int                           // the first entry written; the ones before are skipped
		restart     bool                          // the server restarts before the sink starts
	}{
		{"no record", 1, nil, 0, false},
		{"delivered up to seq 6", 1, func(*streams.SinkPosition) {}, 6, false},
		{"delivered up to seq 6, four requests", 4, func(*streams.SinkPosition) {}, 6, false},
		// The first create-or-update answer after a restart carries the info the server took
		// when it recovered the consumer, with the recovery's time as its creation time.
		{"delivered up to seq 6, the server restarted", 1, func(*streams.SinkPosition) {}, 6, true},
		{"stream went backwards", 1, func(r *streams.SinkPosition) { r.ID = "another message" }, 0, false},
		{"an earlier consumer's record", 1, func(r *streams.SinkPosition) { r.Consumer-- }, 0, false},
		{"another stream's record", 1, func(r *streams.SinkPosition) { r.Stream = "PARSED" }, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]int{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
					var doc struct{ Message string }
					if len(line) > 0 && json.Unmarshal(line, &doc) == nil {
						mu.Lock()
						got[doc.Message]++
						mu.Unlock()
					}
				}
			}))
			defer srv.Close()
			opts := natstest.Options(t.TempDir())
			e := connectEnv(t, natstest.RunServer(t, opts))
			for i := range n {
				publish(t, e.js, "/c.log", []string{fmt.Sprintf("entry %d", i)}, 1)
			}
			ctx := context.Background()
			if tc.rec != nil {
				cons, err := streams.EnsureConsumer(ctx, e.js, streams.ConsumerSpec{Stream: "LOGS", Durable: "hook", Filters: []string{"logs.>"}, AckWait: 30 * time.Second, MaxDeliver: -1})
				if err != nil {
					t.Fatal(err)
				}
				msgs := readStream(t, e.js, "LOGS")
				rec := streams.SinkPosition{Stream: "LOGS", Seq: msgs[5].Seq, ID: msgs[5].ID, Consumer: cons.CachedInfo().Created.UnixNano()}
				tc.rec(&rec)
				putSinkPosition(t, e.js, "hook", rec)
			}
			if tc.restart {
				e.s.Shutdown()
				e.s.WaitForShutdown()
				opts.Port = -1
				e = connectEnv(t, natstest.RunServer(t, opts))
			}
			cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: hook, type: http, input: logs.>, url: %q, compression: none, batch: { max_entries: 1 }, request: { concurrency: %d } }
`, srv.URL, tc.concurrency))
			run(t, e, cfg, fastTuning)
			var cons jetstream.Consumer
			natstest.Eventually(t, 30*time.Second, func() error {
				var err error
				if cons == nil {
					if cons, err = e.js.Consumer(ctx, "LOGS", "hook"); err != nil {
						return err
					}
				}
				info, err := cons.Info(ctx)
				if err != nil {
					return err
				}
				if info.AckFloor.Stream != n || info.NumAckPending != 0 {
					return fmt.Errorf("ack floor %d, %d pending", info.AckFloor.Stream, info.NumAckPending)
				}
				return nil
			})
			mu.Lock()
			for i := range n {
				want := 1
				if i < tc.written {
					want = 0
				}
				if c := got[fmt.Sprintf("entry %d", i)]; c != want {
					t.Errorf("entry %d written %d times, want %d", i, c, want)
				}
			}
			mu.Unlock()
			// The record follows the ack floor, with the message there and the consumer.
			msgs := readStream(t, e.js, "LOGS")
			natstest.Eventually(t, 10*time.Second, func() error {
				rec := getSinkPosition(t, e.js, "hook")
				want := streams.SinkPosition{Stream: "LOGS", Seq: n, ID: msgs[n-1].ID, Consumer: cons.CachedInfo().Created.UnixNano()}
				if rec == nil || *rec != want {
					return fmt.Errorf("recorded %+v, want %+v", rec, want)
				}
				return nil
			})
		})
	}
}

func positionsKV(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: streams.PositionsBucket, History: 1, Storage: jetstream.FileStorage, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func putSinkPosition(t testing.TB, js jetstream.JetStream, sink string, rec streams.SinkPosition) {
	t.Helper()
	if _, err := positionsKV(t, js).Put(context.Background(), streams.SinkPositionKey(sink), rec.Encode()); err != nil {
		t.Fatal(err)
	}
}

func getSinkPosition(t testing.TB, js jetstream.JetStream, sink string) *streams.SinkPosition {
	t.Helper()
	e, err := positionsKV(t, js).Get(context.Background(), streams.SinkPositionKey(sink))
	if err != nil {
		return nil
	}
	rec, err := streams.DecodeSinkPosition(e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
