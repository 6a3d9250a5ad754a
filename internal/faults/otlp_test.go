package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/otelcol"
	"github.com/logcap/logcap/internal/proctest"
	"github.com/logcap/logcap/otlp"
	"github.com/logcap/logcap/streams"
)

// file → logcap → otlp sink → the real OpenTelemetry Collector (OTLP receiver, file
// exporter): 50,000 lines through the protobuf encoding, every line once with body = the
// line and the file's identity as resource attributes; and JSON lines parsed by a json step
// through the JSON encoding, their level as severity and their fields as attributes.
func TestOTLPSinkIntoCollector(t *testing.T) {
	otelcol.Binary(t)
	const total, parsed = 50_000, 500
	protoAddr, jsonAddr := otelcol.FreeAddr(t), otelcol.FreeAddr(t)
	col := otelcol.New(t, fmt.Sprintf(`receivers:
  otlp/proto:
    protocols: {http: {endpoint: %q}}
  otlp/json:
    protocols: {http: {endpoint: %q}}
exporters:
  file/proto: {path: "{{DIR}}/proto.json", flush_interval: 100ms}
  file/json: {path: "{{DIR}}/json.json", flush_interval: 100ms}
service:
%s  pipelines:
    logs/proto: {receivers: [otlp/proto], exporters: [file/proto]}
    logs/json: {receivers: [otlp/json], exporters: [file/json]}
`, protoAddr, jsonAddr, otelcol.Telemetry))
	col.Start(t)

	logs := t.TempDir()
	plain, levels := filepath.Join(logs, "app.log"), filepath.Join(logs, "levels.log")
	proctest.AppendLines(t, plain, 0, total, "via otlp")
	var jl strings.Builder
	lv := []string{"debug", "info", "warn", "error"}
	for i := range parsed {
		fmt.Fprintf(&jl, `{"level":%q,"user":"u%d","n":%d}`+"\n", lv[i%4], i, i)
	}
	if err := os.WriteFile(levels, []byte(jl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, fmt.Sprintf(`sources:
  - {name: app, type: file, paths: [%q], start_at: beginning}
processors:
  - {name: parsed, input: %q, steps: [json: {}]}
sinks:
  - {name: otel, type: otlp, input: %q, url: "http://%s", batch: {max_entries: 2000}}
  - {name: oteljson, type: otlp, input: "parsed.>", url: "http://%s/v1/logs", encoding: json}
`, filepath.Join(logs, "*.log"), streams.SourceSubject("file", "faults", levels),
		streams.SourceSubject("file", "faults", plain), protoAddr, jsonAddr))
	p := n.start(t)
	dumpLogsOnFailure(t, p)

	count := func(path string) int {
		c := 0
		for _, l := range otelcol.ReadFileExport(t, path) {
			c += l.Count()
		}
		return c
	}
	poll(t, 3*time.Minute, 100*time.Millisecond, func() error {
		if c, d := count(filepath.Join(col.Dir, "proto.json")), count(filepath.Join(col.Dir, "json.json")); c < total || d < parsed {
			return fmt.Errorf("the Collector wrote %d of %d plain and %d of %d parsed records", c, total, d, parsed)
		}
		return nil
	})
	js := n.connect(t)
	poll(t, time.Minute, 100*time.Millisecond, func() error { return consumerDone(js, "LOGS", "otel") })
	col.Stop(t) // flushes the file exporter: nothing more can arrive

	ta := newTally()
	for _, l := range otelcol.ReadFileExport(t, filepath.Join(col.Dir, "proto.json")) {
		for _, r := range l.Resources {
			wantAttrs(t, r.Attrs, map[string]any{"host.name": "faults", "log.file.path": plain, "log.file.name": "app.log"})
			for _, s := range r.Scopes {
				for _, rec := range s.Records {
					if rec.Time == 0 || rec.Observed == 0 || rec.Time < rec.Observed {
						t.Fatalf("record %v: want time (read time + index) ≥ observed time (read time), both set", rec)
					}
					body, _ := rec.Body.(string)
					if !strings.HasSuffix(body, " via otlp") {
						t.Fatalf("record body %q: want the line", body)
					}
					if err := ta.add([]byte(body)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if lost := ta.report(t, "file → otlp sink → Collector", total); lost != 0 || ta.dups != 0 || ta.total != total {
		t.Errorf("want every line exactly once; missing: %s", ta.missingRanges(total))
	}
	checkParsed(t, otelcol.ReadFileExport(t, filepath.Join(col.Dir, "json.json")), levels, parsed)
}

// checkParsed checks the JSON lines that went through the json step: severity from level,
// fields as attributes, the body the line as read.
func checkParsed(t *testing.T, reqs []*otlp.Logs, path string, want int) {
	t.Helper()
	sev := map[string]int32{"debug": otlp.SeverityDebug, "info": otlp.SeverityInfo, "warn": otlp.SeverityWarn, "error": otlp.SeverityError}
	seen := map[string]bool{}
	for _, l := range reqs {
		for _, r := range l.Resources {
			wantAttrs(t, r.Attrs, map[string]any{"host.name": "faults", "log.file.path": path})
			for _, s := range r.Scopes {
				for _, rec := range s.Records {
					level, _ := otlp.Lookup(rec.Attrs, "level")
					user, _ := otlp.Lookup(rec.Attrs, "user")
					n, _ := otlp.Lookup(rec.Attrs, "n")
					wantBody := fmt.Sprintf(`{"level":%q,"user":%q,"n":%d}`, level, user, n)
					if rec.SeverityNumber != sev[level.(string)] || rec.SeverityText != level || rec.Body != wantBody {
						t.Fatalf("record %+v: want severity %d %q from level, body %s", rec, sev[level.(string)], level, wantBody)
					}
					if seen[wantBody] {
						t.Fatalf("%s twice", wantBody)
					}
					seen[wantBody] = true
				}
			}
		}
	}
	if len(seen) != want {
		t.Errorf("parsed lines: %d arrived, want %d", len(seen), want)
	}
}

func wantAttrs(t *testing.T, attrs []otlp.KV, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got, ok := otlp.Lookup(attrs, k); !ok || got != v {
			t.Fatalf("resource attributes %v: want %s = %v", attrs, k, v)
		}
	}
}

// collectorFilelog is a Collector that reads in.log in its directory from the beginning and
// exports it with OTLP/HTTP to logcap at addr, retrying quickly.
func collectorFilelog(t *testing.T, addr, encoding string) *otelcol.Collector {
	return otelcol.New(t, fmt.Sprintf(`receivers:
  file_log:
    include: ["{{DIR}}/in.log"]
    start_at: beginning
    retry_on_failure: {enabled: true}   # slow down rather than drop when the exporter's queue is full
    resource: {service.name: shop, host.name: web-9}
exporters:
  otlp_http:
    endpoint: "http://%s"
    encoding: %s
    retry_on_failure: {enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 10m}
service:
%s  pipelines:
    logs: {receivers: [file_log], exporters: [otlp_http]}
`, addr, encoding, otelcol.Telemetry))
}

// readOTLP reads the entries on filter from LOGS until want arrived or timeout passes.
func readOTLP(t *testing.T, js jetstream.JetStream, filter string, want int, timeout time.Duration) *tally {
	t.Helper()
	return readOTLPFrom(t, js, "LOGS", filter, want, timeout, nil)
}

// readOTLPFrom reads the entries on filter from stream, checking each with check (if set).
func readOTLPFrom(t *testing.T, js jetstream.JetStream, stream, filter string, want int, timeout time.Duration, check func(event.Entry) error) *tally {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	for ta.total < want && ctx.Err() == nil {
		batch, err := cons.FetchBytes(8<<20, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ents, err := streams.Entries(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Host != "web-9" || e.Source != "shop" || e.Kind != "otlp" {
					t.Fatalf("entry %+v: want host web-9, source shop, kind otlp", e)
				}
				if check != nil {
					if err := check(e); err != nil {
						t.Fatalf("entry %+v: %v", e, err)
					}
				}
				if err := ta.add([]byte(e.Message)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return ta
}

// The real Collector's filelog receiver reads 20,000 lines and exports them with OTLP/HTTP
// (protobuf, then JSON) to logcap's otlp source: every line lands in LOGS once, on
// logs.otlp.web-9.shop.
func TestOTLPSourceFromCollector(t *testing.T) {
	otelcol.Binary(t)
	const total = 20_000
	for _, enc := range []string{"proto", "json"} {
		t.Run(enc, func(t *testing.T) {
			addr := otelcol.FreeAddr(t)
			// A processor on the OTLP entries: its derived stream keeps what OTLP carried.
			n := newNode(t, fmt.Sprintf("sources:\n  - {name: otel, type: otlp, listen: %q}\n"+
				"processors:\n  - {name: parsed, input: \"logs.otlp.>\", steps: [drop: 'fields[\"log.file.name\"] != \"in.log\"']}\n", addr))
			p := n.start(t)
			dumpLogsOnFailure(t, p)
			col := collectorFilelog(t, addr, enc)
			proctest.AppendLines(t, filepath.Join(col.Dir, "in.log"), 0, total, "from the collector")
			col.Start(t)
			js := n.connect(t)
			ta := readOTLP(t, js, "logs.otlp.web-9.shop", total, 3*time.Minute)
			if lost := ta.report(t, "Collector filelog → otlp_http "+enc+" → otlp source → LOGS", total); lost != 0 || ta.dups != 0 || ta.total != total {
				t.Errorf("want every line exactly once; missing: %s", ta.missingRanges(total))
			}
			ta = readOTLPFrom(t, js, "PARSED", "parsed.otlp.web-9.shop", total, 3*time.Minute, func(e event.Entry) error {
				res, _ := e.Fields["resource"].(map[string]any)
				scope, _ := e.Fields["scope"].(map[string]any)
				if e.Fields["log.file.name"] != "in.log" || res["service.name"] != "shop" || res["host.name"] != "web-9" ||
					!strings.Contains(fmt.Sprint(scope["name"]), "filelogreceiver") || e.Time.IsZero() {
					return fmt.Errorf("fields %v: want the record attribute log.file.name, the resource and the scope", e.Fields)
				}
				return nil
			})
			if lost := ta.report(t, "… → processor (drop step) → PARSED", total); lost != 0 || ta.dups != 0 {
				t.Errorf("derived stream: want every line exactly once; missing: %s", ta.missingRanges(total))
			}
		})
	}
}

// kill -9 of logcap while the Collector exports 20,000 lines to its otlp source, then a
// restart on the same address: every line the Collector was told was accepted is in LOGS
// (a request is answered only after its publish was acked), and the Collector's retries of
// the requests that were cut bring the rest. A retry of a request already stored (its answer
// lost in the kill) is dropped by JetStream's duplicate window: the msg ids come from the
// request's bytes.
func TestOTLPSourceKill9(t *testing.T) {
	otelcol.Binary(t)
	const total = 20_000
	addr := otelcol.FreeAddr(t)
	n := newNode(t, fmt.Sprintf("sources:\n  - {name: otel, type: otlp, listen: %q}\n", addr))
	p := n.start(t)
	col := collectorFilelog(t, addr, "proto")
	proctest.AppendLines(t, filepath.Join(col.Dir, "in.log"), 0, total, "from the collector")
	col.Start(t)
	js := n.connect(t)
	waitStored(t, js, 20)
	beforeKill := storedMsgs(t, js)
	p.Kill9()
	p = n.start(t)
	dumpLogsOnFailure(t, p)
	js = n.connect(t)
	ta := readOTLP(t, js, "logs.otlp.web-9.shop", total, 3*time.Minute)
	final := storedMsgs(t, js)
	t.Logf("%d messages in LOGS just before the kill, %d at the end", beforeKill, final)
	if beforeKill >= final {
		t.Errorf("the kill came after the Collector had sent everything: it tests nothing")
	}
	if lost := ta.report(t, "kill -9 during Collector → otlp source", total); lost != 0 {
		t.Errorf("lost lines: %s", ta.missingRanges(total))
	}
	if ta.dups != 0 {
		t.Logf("%d duplicates: requests the Collector retried after their first copy was stored (outside the duplicate window, or re-encoded)", ta.dups)
	}
}
