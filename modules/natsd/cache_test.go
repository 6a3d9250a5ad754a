package natsd_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
)

// The guard for the nats-server patch logcap carries (third_party/nats-server/PATCH.md).
// Upstream, the embedded file store keeps every message block it wrote or read in memory for
// 10 s after the last use, so a consumer reading at the write head held ingest rate × 10 s of
// heap (674 MiB at 242 MB/s). nats.embedded.cache_expire (default 100ms) bounds that. If an
// upgrade drops the patch, or the option stops reaching the streams (created or recovered),
// the heap after a burst stays near the burst's size and these tests fail. The patch's second
// change, sealed blocks let go once read, has its own guard (TestSealedBlockReleasedWhenRead).

const (
	burstBytes = 96 << 20  // written per burst, in msgBytes messages
	msgBytes   = 256 << 10 // a chunk as logcap's sources publish under load
	// heapSlack is what the live heap may exceed its level before the burst by, once the
	// burst is written and read (measured: 0.4–0.7 MiB, 300 ms after the burst). Without the
	// patch the heap holds every block of the last 10 s: the whole burst.
	heapSlack = burstBytes / 8
	// settle bounds how long the heap may take to come down after the burst: well past
	// cache_expire (plus nats-server's 100 ms access-time tick), well short of upstream's 10 s.
	settle = 4 * time.Second
)

// startApp starts the natsd module on cfg and returns its client and a stop function.
func startApp(t *testing.T, dataDir string) (*natsd.Client, func()) {
	t.Helper()
	cfg := baseConfig(t)
	cfg.DataDir = dataDir
	cfg.NATS.Embedded.Listen = "none"
	var c *natsd.Client
	app := fxtest.New(t, fx.Supply(cfg, zap.NewNop()), natsd.Module, fx.Populate(&c), fx.NopLogger)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// liveHeap collects twice (the store recycles block buffers through a sync.Pool, which
// survives one collection in its victim cache) and returns the heap marked live.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// burst writes burstBytes into LOGS while an ordered consumer reads at the head, waits until
// the consumer has read all of it, and then until the live heap is back within heapSlack of
// where it was before — failing if that does not happen within settle.
func burst(t *testing.T, c *natsd.Client, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	subject := fmt.Sprintf("logs.file.t.burst%d", round)
	cons, err := c.JS.OrderedConsumer(ctx, c.LogsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var read atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) { read.Add(int64(len(m.Data()))) })
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	defer cc.Stop()

	before := liveHeap()
	payload := make([]byte, msgBytes)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	for sent := 0; sent < burstBytes; sent += msgBytes {
		if _, err := c.JS.PublishAsync(subject, payload); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	select {
	case <-c.JS.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatalf("publishes not acknowledged: %v", ctx.Err())
	}
	natstest.Eventually(t, time.Minute, func() error {
		if n := read.Load(); n < burstBytes {
			return fmt.Errorf("consumer read %d of %d bytes", n, burstBytes)
		}
		return nil
	})
	natstest.CheckFor(t, settle, 50*time.Millisecond, func() error {
		after := liveHeap()
		if after >= before+heapSlack {
			return fmt.Errorf("round %d: live heap %.1f MiB after a %d MiB burst read at the head (%.1f MiB before; "+
				"bound %.1f MiB): the file store keeps its block caches: is the nats-server patch "+
				"(third_party/nats-server/PATCH.md) applied, and does nats.embedded.cache_expire reach the streams?",
				round, mib(after), burstBytes>>20, mib(before), mib(before+heapSlack))
		}
		t.Logf("round %d: live heap %.1f MiB before, %.1f MiB after a %d MiB burst", round, mib(before), mib(after), burstBytes>>20)
		return nil
	})
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestBlockCacheBoundedAfterBurst: a stream created by logcap, then the same stream
// recovered from disk by a restarted server, each take a burst read at the head and give the
// store's block buffers back within settle.
func TestBlockCacheBoundedAfterBurst(t *testing.T) {
	dir := t.TempDir()
	c, stop := startApp(t, dir)
	burst(t, c, 1)
	stop()

	c, _ = startApp(t, dir) // LOGS is recovered from dir, not created
	info, err := c.JS.Stream(context.Background(), c.LogsStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Bytes; got < burstBytes {
		t.Fatalf("recovered LOGS holds %d bytes, want the first burst's %d", got, burstBytes)
	}
	burst(t, c, 2)
}

// sealedEnv starts a server whose block caches expire after an hour (only a release can
// bring the heap down: no clock is involved), and returns a publish of one 256 KiB message
// and a read of the next n of an ordered consumer on the same subject.
func sealedEnv(t *testing.T) (publish func(), read func(n int)) {
	t.Helper()
	cfg := baseConfig(t)
	cfg.NATS.Embedded.Listen = "none"
	cfg.NATS.Embedded.CacheExpire = config.Duration(time.Hour)
	c, err := run(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	const subject = "logs.file.t.sealed"
	cons, err := c.JS.OrderedConsumer(ctx, c.LogsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	payload := make([]byte, msgBytes)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	publish = func() {
		t.Helper()
		if _, err := c.JS.Publish(ctx, subject, payload); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	read = func(n int) {
		t.Helper()
		batch, err := cons.FetchNoWait(n)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		got := 0
		for range batch.Messages() {
			got++
		}
		if err := batch.Error(); err != nil || got != n {
			t.Fatalf("fetched %d of %d messages: %v", got, n, err)
		}
	}
	return publish, read
}

const (
	sealedBlocks = 8
	perBlock     = (8 << 20) / msgBytes // LOGS has 8 MiB blocks
)

// checkSealedReleased fails unless the live heap holds at most 2 of the sealedBlocks blocks
// written since before: the one being written, and the one the consumer is in.
func checkSealedReleased(t *testing.T, before uint64, hunk string) {
	t.Helper()
	after := liveHeap()
	if bound := before + 3*(8<<20); after >= bound {
		t.Fatalf("live heap %.1f MiB after %d sealed 8 MiB blocks were read to their end (%.1f MiB before; bound %.1f MiB): "+
			"sealed blocks keep their caches until cache_expire: is the %s of third_party/nats-server/cache-expire.patch applied?",
			mib(after), sealedBlocks, mib(before), mib(bound), hunk)
	}
	t.Logf("live heap %.1f MiB before, %.1f MiB after %d sealed blocks read", mib(before), mib(after), sealedBlocks)
}

// TestSealedBlockReleasedWhenRead guards the patch's second hunk (tryExpireWriteCache in
// server/filestore.go): once the writer has moved to a new block, the old block's last write
// no longer keeps its cache; only reads do, and a consumer reading past the block's last
// message releases it at once. Upstream keeps a sealed block that was read while it was
// being written until cache_expire has passed since its last write, so a consumer a moment
// behind the writer held every block of the last cache_expire + 0.1 s (at 350 MB/s into LOGS,
// ~70 MB, which held logcap's sources at the memory gate two thirds of the time).
func TestSealedBlockReleasedWhenRead(t *testing.T) {
	publish, read := sealedEnv(t)
	const publishesEach = perBlock + 2 // enough to seal the block being written
	before := liveHeap()
	for range sealedBlocks {
		// One message read at the head marks the write block as read; the rest of it is read
		// only after the writer has sealed it and moved on.
		publish()
		read(1)
		for range publishesEach - 1 {
			publish()
		}
		read(publishesEach - 1)
	}
	checkSealedReleased(t, before, "tryExpireWriteCache hunk")
}

// TestTailBlockReleasedWhenSealed guards the third hunk (tryExpireWriteCache, the block's
// last message read already): a consumer at the tail reads each message as it is stored, so
// it has read a block's last message before the writer seals the block, and never passes
// its end after. Its last read then kept the sealed cache for cache_expire (every block of
// the last 0.1–0.2 s at the default: with a processor and a sink each at the tail of a
// stream, 32–40 MiB, which held the sources at the memory gate 70 % of a json run).
func TestTailBlockReleasedWhenSealed(t *testing.T) {
	publish, read := sealedEnv(t)
	before := liveHeap()
	for range sealedBlocks*perBlock + 2 {
		publish()
		read(1)
	}
	checkSealedReleased(t, before, "tail-read hunk")
}
