package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/retry"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

// A receiver without HEAD (Python's http.server, many ingest endpoints answer 501) that
// fails its first writes: the http sink must not take the 501 for "down" and wait forever.
// Any answer but 429/502/503/504 shows the destination is up.
func TestDeliverRecoversWhenHEADIsNotImplemented(t *testing.T) {
	var posts, heads, stored atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodHead:
			heads.Add(1)
			w.WriteHeader(http.StatusNotImplemented)
		case posts.Add(1) <= 2:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		default:
			stored.Add(1)
		}
	}))
	defer srv.Close()
	var opts config.Options
	if err := yaml.Unmarshal([]byte("url: "+srv.URL), &opts); err != nil {
		t.Fatal(err)
	}
	sink, err := sinks.New("http", "hook", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	m, st := rawMsg(t, 1, "a", "b")
	obs := &downCounts{}
	stage := &Stage{Name: "hook", Obs: obs, MaxDeliver: 10, AckWait: time.Minute,
		Retry: retry.Policy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: retry.Full}}
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stage.Deliver(stop, context.Background(), sink, stage.NewBatch(stop, []*Msg{m})); err != nil {
		t.Fatal(err)
	}
	if stop.Err() != nil || len(st.how) != 1 || st.how[0] != "ack" {
		t.Fatalf("message settled %v after %d POSTs and %d HEADs (stop: %v), want acked once the receiver took it",
			st.how, posts.Load(), heads.Load(), stop.Err())
	}
	if stored.Load() != 1 {
		t.Errorf("stored %d batches, want 1", stored.Load())
	}
}

// downUntil is a destination down (every Write and Check fail) until a moment.
type downUntil struct {
	up     time.Time
	checks atomic.Int64
}

func (d *downUntil) Write(context.Context, []sinks.Record) error {
	if time.Now().Before(d.up) {
		return errors.New("connection refused")
	}
	return nil
}

func (d *downUntil) Check(context.Context) error {
	d.checks.Add(1)
	if time.Now().Before(d.up) {
		return errors.New("connection refused")
	}
	return nil
}

func (d *downUntil) Close() error { return nil }

type downCounts struct {
	NopObserver
	probesFailed int
	lastDown     time.Duration
}

func (c *downCounts) ProbeFailed(down time.Duration) { c.probesFailed++; c.lastDown = down }

// After an outage longer than a few probes, delivery resumes within seconds of the
// destination's return, whatever the sink's backoff cap (30 s by default), and without
// probing more than about once a second meanwhile.
func TestDeliverRecoversWithinSecondsOfTheOutage(t *testing.T) {
	const outage = 9500 * time.Millisecond
	d := &downUntil{up: time.Now().Add(outage)}
	m, st := rawMsg(t, 1, "a")
	obs := &downCounts{}
	stage := &Stage{Name: "s", Obs: obs, MaxDeliver: 10, AckWait: time.Minute,
		Retry: retry.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: retry.None}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stage.Deliver(ctx, ctx, d, stage.NewBatch(ctx, []*Msg{m})); err != nil {
		t.Fatal(err)
	}
	lag := time.Since(d.up)
	t.Logf("outage %v: delivered %v after the destination was back; %d probes, %d failed", outage, lag.Round(time.Millisecond), d.checks.Load(), obs.probesFailed)
	if len(st.how) != 1 || st.how[0] != "ack" {
		t.Fatalf("settled %v, want ack", st.how)
	}
	if lag > 5*time.Second {
		t.Errorf("delivered %v after the destination was back, want ≤ 5s", lag.Round(time.Millisecond))
	}
	if n := d.checks.Load(); n > int64(outage/time.Second)+2 {
		t.Errorf("%d probes in a %v outage: hammering", n, outage)
	}
	if obs.probesFailed == 0 || obs.lastDown < outage/2 {
		t.Errorf("observer told of %d failed probes, down for %v: want every failed probe and how long it has been down", obs.probesFailed, obs.lastDown)
	}
}

// The sinks read chunk headers by name without importing streams: the names must agree.
func TestHeaderNames(t *testing.T) {
	for got, want := range map[string]string{sinks.HdrReadTime: streams.HdrReadTime, sinks.HdrContainer: streams.HdrContainer, sinks.HdrImage: streams.HdrImage} {
		if got != want {
			t.Errorf("sinks says %q, streams %q", got, want)
		}
	}
}
