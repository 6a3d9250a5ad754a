package streams_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

// slowLink forwards one TCP connection to target, delaying what the server sends by delay:
// a loaded machine or a distant server. Found by the soak: a fetch that stops listening
// before the server's expiry loses the messages in flight at that moment (the server counts
// them delivered; they come back only after AckWait, behind later ones).
func slowLink(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						time.Sleep(delay) // each read reaches the client delay later, in order
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// Messages that arrive all the time, fetched in short fetches over a link that adds 30 ms:
// every message must come out of some Fetch at once, none only after AckWait. Found by the
// soak (150 of 118,760 lines lost: the file sink skipped the late redeliveries); with the
// client's deadline 10% after the server's expiry, this test lost 72 of 200.
func TestFetchLosesNothingAtExpiry(t *testing.T) {
	s := natstest.RunServer(t, nil)
	_, js := natstest.Connect(t, s)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "F", Subjects: []string{"f.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "F", jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	addr := slowLink(t, s.Addr().String(), 30*time.Millisecond)
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	scons, err := sjs.Consumer(ctx, "F", cons.CachedInfo().Name)
	if err != nil {
		t.Fatal(err)
	}

	const total = 200
	var pub sync.WaitGroup
	defer pub.Wait()
	pub.Go(func() {
		// One message every 10 ms, so some are always in flight when a fetch expires.
		for i := range total {
			if _, err := js.Publish(ctx, "f.x", fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	got := map[uint64]int{}
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < total && time.Now().Before(deadline) {
		msgs, err := streams.Fetch(ctx, scons, streams.FetchOpts{MaxMsgs: 1000, MaxWait: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			meta, _ := m.Metadata()
			got[meta.Sequence.Stream]++
			_ = m.Ack()
		}
	}
	published := total
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d, fetched %d distinct; delivered-but-unacked on the server: %d", published, len(got), info.NumAckPending)
	if len(got) != total {
		t.Fatalf("%d of %d messages never came out of Fetch (lost in flight at a fetch's expiry; back only after AckWait)", total-len(got), total)
	}
}
