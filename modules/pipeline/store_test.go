package pipeline_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/internal/vlogs"
	"github.com/logcap/logcap/modules/pipeline"
	"github.com/logcap/logcap/streams"
)

// The loki, elasticsearch and http sinks against a real log store (VictoriaLogs, which
// takes the Loki push API, the Elasticsearch _bulk API and JSON lines): 100,000 file lines
// and a container's stderr go from LOGS through the real pipeline into the store,
// which is then asked with LogsQL. Every line arrives once, with its source and stream,
// and the entries of each source are strictly ordered in time, in file order.
func TestSinksIntoVictoriaLogs(t *testing.T) {
	vlogs.Binary(t) // skips (or fails under LOGCAP_REQUIRE_VICTORIALOGS=1) before any work
	const perFile = 100_000
	for _, tc := range []struct {
		name, typ, url, extra string
		idField               bool
	}{
		// VictoriaLogs' own query args name the message and time fields: the url keeps its
		// query string (bug 3 of #15).
		{name: "http", typ: "http", url: "/insert/jsonline?_msg_field=message&_time_field=time&_stream_fields=source", extra: "id_field: logcap_id", idField: true},
		{name: "elasticsearch", typ: "elasticsearch", url: "/insert/elasticsearch?_msg_field=message&_time_field=@timestamp&_stream_fields=source", extra: "index: logs, id_field: logcap_id", idField: true},
		// The push as protobuf+snappy (the default), the record ID as structured metadata.
		{name: "loki", typ: "loki", url: "/insert", extra: "id_field: logcap_id", idField: true},
		{name: "loki-json", typ: "loki", url: "/insert", extra: "encoding: json, id_field: logcap_id", idField: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vl := vlogs.Start(t)
			e := newEnv(t)
			lines := make([]string, perFile)
			for i := range lines {
				lines[i] = fmt.Sprintf("line %06d %s", i, strings.Repeat("x", 160))
			}
			publish(t, e.js, "/var/log/a.log", lines, 5000)
			docker := make([]string, 1000)
			for i := range docker {
				docker[i] = fmt.Sprintf("nginx stderr %04d", i)
			}
			publishDocker(t, e.js, "nginx", "stderr", docker, 250)
			want := perFile + len(docker)

			cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: store, type: %s, input: logs.>, url: %q, batch: { max_entries: 1000 } %s }
`, tc.typ, vl.URL+tc.url, map[bool]string{true: ", " + tc.extra, false: ""}[tc.extra != ""]))
			began := time.Now()
			pl := run(t, e, cfg, fastTuning)
			natstest.Eventually(t, 90*time.Second, func() error {
				if st := pl.Stats().Sinks["store"]; st.Entries < uint64(want) {
					return fmt.Errorf("sink accepted %d of %d entries", st.Entries, want)
				}
				return nil
			})
			took := time.Since(began)
			var n int
			natstest.Eventually(t, time.Minute, func() error {
				var err error
				if n, err = vl.TryCount("*"); err == nil && n < want {
					err = fmt.Errorf("VictoriaLogs holds %d of %d entries", n, want)
				}
				return err
			})
			st := pl.Stats().Sinks["store"]
			t.Logf("%s: %d entries (%d MB) into VictoriaLogs in %v (%.0f entries/s); sink stats %+v",
				tc.typ, want, want*170/1_000_000, took.Round(time.Millisecond), float64(want)/took.Seconds(), st)
			if st.DeadLetters != 0 {
				t.Errorf("%d dead letters", st.DeadLetters)
			}

			fields := "_msg, _time, source, kind, stream"
			if tc.idField {
				fields += ", logcap_id"
			}
			rows := vl.Query(t, "* | fields "+fields)
			if len(rows) != want {
				t.Errorf("VictoriaLogs holds %d entries, want %d (each line once)", len(rows), want)
			}
			bySource := map[string][]map[string]string{}
			seen := map[string]int{}
			ids := map[string]bool{}
			for _, r := range rows {
				seen[r["_msg"]]++
				bySource[r["source"]] = append(bySource[r["source"]], r)
				if tc.idField {
					if !strings.HasPrefix(r["logcap_id"], "LOGS-") || ids[r["logcap_id"]] {
						t.Fatalf("entry %v: logcap_id missing or repeated", r)
					}
					ids[r["logcap_id"]] = true
				}
			}
			check := func(source, kind, stream string, lines []string) {
				t.Helper()
				got := bySource[source]
				if len(got) != len(lines) {
					t.Errorf("%s: %d entries, want %d", source, len(got), len(lines))
					return
				}
				times := make(map[string]time.Time, len(got))
				for _, r := range got {
					ts, err := time.Parse(time.RFC3339Nano, r["_time"])
					if err != nil {
						t.Fatalf("%s: entry %v: _time: %v", source, r, err)
					}
					times[r["_time"]] = ts
				}
				sort.SliceStable(got, func(i, j int) bool { return times[got[i]["_time"]].Before(times[got[j]["_time"]]) })
				var prev time.Time
				for i, r := range got {
					ts := times[r["_time"]]
					if i > 0 && !ts.After(prev) {
						t.Fatalf("%s: entry %d at %s, not after the previous one (%s)", source, i, r["_time"], prev.Format(time.RFC3339Nano))
					}
					prev = ts
					if r["_msg"] != lines[i] {
						t.Fatalf("%s: entry %d by time is %q, want %q (file order)", source, i, r["_msg"], lines[i])
					}
					if seen[lines[i]] != 1 {
						t.Fatalf("%s: %q stored %d times", source, lines[i], seen[lines[i]])
					}
					if r["kind"] != kind || r["stream"] != stream {
						t.Fatalf("%s: entry %v: want kind %q, stream %q", source, r, kind, stream)
					}
				}
			}
			check("/var/log/a.log", "file", "", lines)
			check("nginx", "docker", "stderr", docker)
		})
	}
}

// The store down for 20 s in the middle of the stream: nothing is dead-lettered, and
// delivery resumes (a first write accepted) within 5 s of its return (the probes' interval
// is capped at 3 s, not the 30 s of the sink's backoff).
func TestSinkRecoversFromVictoriaLogsOutage(t *testing.T) {
	vl := vlogs.Start(t)
	e := newEnv(t)
	cfg := parseConfig(t, fmt.Sprintf(`
sinks:
  - { name: store, type: http, input: logs.>, url: %q, id_field: logcap_id, batch: {max_entries: 1000} }
`, vl.URL+"/insert/jsonline?_msg_field=message&_time_field=time"))
	// The pipeline's defaults: backoff 500ms…30s. Batches of 1,000: the first write after
	// the outage is one of several, so its time is the sink's reaction, not the backlog's.
	pl := run(t, e, cfg, pipeline.Tuning{})
	lines := make([]string, 20_000)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %06d", i)
	}
	publish(t, e.js, "/var/log/o.log", lines[:10_000], 1000)
	natstest.Eventually(t, 30*time.Second, func() error {
		if n := pl.Stats().Sinks["store"].Entries; n != 10_000 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	vl.Stop(t)
	downAt := time.Now()
	publish(t, e.js, "/var/log/o.log", lines[10_000:], 1000)
	natstest.Eventually(t, 10*time.Second, func() error {
		if pl.Stats().Sinks["store"].Retries == 0 {
			return fmt.Errorf("no failed write yet")
		}
		return nil
	})
	<-time.After(20*time.Second - time.Since(downAt)) // the outage itself, not a synchronization
	vl.Restart(t)
	backAt := time.Now()
	// Resumed: the first write after the outage accepted. What follows is the backlog's
	// throughput, which on a loaded machine is no measure of how soon the sink noticed.
	natstest.Eventually(t, 30*time.Second, func() error {
		if n := pl.Stats().Sinks["store"].Entries; n == 10_000 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	lag := time.Since(backAt)
	natstest.Eventually(t, 60*time.Second, func() error {
		if n := pl.Stats().Sinks["store"].Entries; n != 20_000 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	st := pl.Stats().Sinks["store"]
	t.Logf("outage %v: delivery resumed %v after VictoriaLogs answered again, all delivered %v after; sink stats %+v",
		backAt.Sub(downAt).Round(time.Millisecond), lag.Round(time.Millisecond), time.Since(backAt).Round(time.Millisecond), st)
	if lag > 5*time.Second {
		t.Errorf("delivery resumed %v after the store was back, want ≤ 5s", lag.Round(time.Millisecond))
	}
	if st.DeadLetters != 0 {
		t.Errorf("%d dead letters during an outage", st.DeadLetters)
	}
	if n := vl.Count(t, "*"); n < 20_000 {
		natstest.Eventually(t, 30*time.Second, func() error {
			n, err := vl.TryCount("*")
			if err == nil && n < 20_000 {
				err = fmt.Errorf("VictoriaLogs holds %d of 20000", n)
			}
			return err
		})
	}
}

// publishDocker writes lines as Docker chunks of perChunk lines each (`docker logs -t`
// format, one line per millisecond from a fixed time) to a container's LOGS subject.
func publishDocker(t testing.TB, js jetstream.JetStream, name, stream string, lines []string, perChunk int) {
	t.Helper()
	ctx := context.Background()
	subj := streams.SourceSubject(streams.KindDocker, "h1", name)
	p := streams.NewPublisher(js, "LOGS", subj, 0)
	t0 := time.Unix(1700000000, 0).UTC()
	for i := 0; i < len(lines); i += perChunk {
		var b strings.Builder
		end := min(i+perChunk, len(lines))
		for j := i; j < end; j++ {
			fmt.Fprintf(&b, "%s %s\n", t0.Add(time.Duration(j)*time.Millisecond).Format("2006-01-02T15:04:05.000000000Z07:00"), lines[j])
		}
		c := &streams.Chunk{Kind: streams.KindDocker, Host: "h1", Source: name, Data: []byte(b.String()), Lines: end - i,
			ReadTime: time.Now(), Docker: &streams.DockerPos{ContainerID: "c0ffee", Stream: stream,
				FirstTS: t0.Add(time.Duration(i) * time.Millisecond), LastTS: t0.Add(time.Duration(end-1) * time.Millisecond), LastTSCount: 1}}
		if _, err := p.Publish(ctx, c.Msg()); err != nil {
			t.Fatalf("publish docker chunk at line %d: %v", i, err)
		}
	}
}
