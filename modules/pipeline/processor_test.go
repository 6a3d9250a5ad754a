package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/replay"
	"github.com/logcap/logcap/streams"
)

const chainYAML = `
processors:
  - name: parsed
    input: logs.>
    steps:
      - json: {}
      - drop: 'fields.level == "debug"'
      - redact: { fields: [password] }
      - set: { fields: { env: test } }
`

// 100,000 entries through json → drop → redact → set into the derived stream: exact counts
// and contents. Then a rebuild (purge + consumer reset) derives the very same stream again.
func TestProcessor100kAndRebuild(t *testing.T) {
	e := newEnv(t)
	cfg := parseConfig(t, chainYAML)
	n, perChunk := 100_000, 100
	if raceEnabled {
		n = 20_000
	}
	lines := jsonLines(n)
	publish(t, e.js, "/var/log/app.log", lines, perChunk)
	began := time.Now()
	pl := run(t, e, cfg, fastTuning)
	waitMsgs(t, e.js, "PARSED", uint64(n/perChunk), 60*time.Second)
	t.Logf("%d entries processed in %v", n, time.Since(began))

	st := pl.Stats().Processors["parsed"]
	if st.In != uint64(n) || st.Out != uint64(n*4/5) || st.Dropped != uint64(n/5) || st.DeadLetters != 0 {
		t.Fatalf("stats %+v: want in %d, out %d, dropped %d", st, n, n*4/5, n/5)
	}
	original := readStream(t, e.js, "PARSED")
	next := 0
	for k, m := range original {
		if want := fmt.Sprintf("LOGS:%d", k+1); m.ID != want {
			t.Fatalf("message %d: msg id %q, want %q", k, m.ID, want)
		}
		if want := streams.Subject("parsed", "file", "h1", "/var/log/app.log"); m.Subject != want {
			t.Fatalf("subject %q, want %q", m.Subject, want)
		}
		entries, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			for next%5 == 0 {
				next++ // the debug lines were dropped
			}
			f := en.Fields
			if f["i"] != int64(next) || f["password"] != "[REDACTED]" || f["env"] != "test" || f["level"] != "info" ||
				en.Message != strings.Replace(lines[next], fmt.Sprintf(`"password":"hunter%d"`, next), `"password":"[REDACTED]"`, 1) ||
				strings.Contains(en.Message, "hunter") || en.Host != "h1" || en.Source != "/var/log/app.log" || en.Kind != "file" {
				t.Fatalf("entry for line %d: %+v", next, en)
			}
			next++
		}
	}
	if next != n-1 && next != n { // the last line (99999) is info: next ends at n
		t.Fatalf("derived stream ends at line %d, want %d", next, n)
	}

	// Rebuild while the processor runs: it must derive the same stream again, entry for entry.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := replay.Reset(ctx, e.js, cfg, "parsed"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 60*time.Second, func() error {
		s, err := e.js.Stream(ctx, "PARSED")
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(len(original)) || info.State.FirstSeq <= original[len(original)-1].Seq {
			return fmt.Errorf("rebuilt stream: %d messages from seq %d", info.State.Msgs, info.State.FirstSeq)
		}
		return nil
	})
	rebuilt := readStream(t, e.js, "PARSED")
	for k := range original {
		o, r := original[k], rebuilt[k]
		if o.Subject != r.Subject || o.ID != r.ID || !bytes.Equal(o.Data, r.Data) {
			t.Fatalf("rebuilt message %d differs:\n%s %s %.200s\n%s %s %.200s", k, o.Subject, o.ID, o.Data, r.Subject, r.ID, r.Data)
		}
	}
	if st := pl.Stats().Processors["parsed"]; st.In != uint64(2*n) {
		t.Errorf("after rebuild the processor read %d entries, want %d", st.In, 2*n)
	}
}

// A poison chunk (a step panics) lands in dead letters with its error and where it came
// from; every chunk after it flows.
func TestPoisonChunk(t *testing.T) {
	e := newEnv(t)
	cfg := parseConfig(t, `
processors:
  - name: p1
    input: logs.>
    steps:
      - json: {}
      - test_panic: {}
`)
	run(t, e, cfg, fastTuning)
	var lines []string
	for i := range 50 {
		l := fmt.Sprintf(`{"i":%d}`, i)
		if i == 20 {
			l = `{"msg":"POISON"} POISON`
		}
		lines = append(lines, l)
	}
	publish(t, e.js, "/a.log", lines, 1) // 50 chunks: the 21st is poison
	waitMsgs(t, e.js, "P1", 49, 20*time.Second)
	waitMsgs(t, e.js, "DEADLETTER", 1, 10*time.Second)
	dl := readStream(t, e.js, "DEADLETTER")[0]
	h := func(k string) string { return strings.Join(dl.Header[k], ",") }
	if dl.Subject != "deadletter.p1" || h(streams.HdrDLConsumer) != "p1" || h(streams.HdrDLStream) != "LOGS" ||
		h(streams.HdrDLSeq) != "21" || h(streams.HdrDLSubject) != streams.SourceSubject("file", "h1", "/a.log") ||
		!strings.Contains(h(streams.HdrDLError), "steps[1] (test_panic): panic: assignment to entry in nil map") ||
		string(dl.Data) != `{"msg":"POISON"} POISON`+"\n" {
		t.Fatalf("dead letter %s %q headers %v", dl.Subject, dl.Data, dl.Header)
	}
	for _, m := range readStream(t, e.js, "P1") {
		if strings.Contains(string(m.Data), "POISON") || m.ID == "LOGS:21" {
			t.Fatalf("poison reached the derived stream: %s", m.Data)
		}
	}
}

// route sends matching entries to their own subject prefix, with their own msg id.
func TestRoute(t *testing.T) {
	e := newEnv(t)
	cfg := parseConfig(t, `
processors:
  - name: parsed
    input: logs.>
    steps:
      - json: {}
      - route: { if: 'fields.level == "error"', to: errors }
`)
	run(t, e, cfg, fastTuning)
	publish(t, e.js, "/r.log", []string{`{"level":"info"}`, `{"level":"error"}`, `{"level":"info"}`}, 3)
	waitMsgs(t, e.js, "PARSED", 2, 10*time.Second)
	got := map[string]string{}
	for _, m := range readStream(t, e.js, "PARSED") {
		es, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Subject] = fmt.Sprintf("%s %d", m.ID, len(es))
	}
	want := map[string]string{
		streams.Subject("parsed", "file", "h1", "/r.log"): "LOGS:1 2",
		streams.Subject("errors", "file", "h1", "/r.log"): "LOGS:1:errors 1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outputs %v, want %v", got, want)
	}
}

// A json step's output is stored as lines+json: the messages as they were, then per entry
// "fields_from":"json" and no more (the subject and read time imply the rest). A processor
// reading it gets the fields back; a chain that only filters keeps the reference, one that
// sets a field writes the fields; output_format: ndjson writes whole entries.
func TestDerivedFormats(t *testing.T) {
	e := newEnv(t)
	// Five streams of 10 GiB each (the default max_bytes, which JetStream reserves) may
	// not fit the test server's share of the disk: 256 MiB each here.
	cfg := parseConfig(t, `
streams: {logs: {max_bytes: 256MiB}}
processors:
  - {name: parsed, input: logs.>, steps: [json: {}]}
  - {name: errors, input: parsed.>, steps: [keep: 'fields.level == "error"']}
  - {name: tagged, input: parsed.>, steps: [{set: {fields: {team: core}}}]}
  - {name: legacy, input: parsed.>, output_format: ndjson, steps: [keep: 'fields.n >= 0']}
`)
	run(t, e, cfg, fastTuning)
	lines := []string{`{"level":"info","n":1}`, `{"level":"error","n":2}`, `not json`}
	publish(t, e.js, "/f.log", lines, 3)
	for _, s := range []string{"PARSED", "ERRORS", "TAGGED", "LEGACY"} {
		waitMsgs(t, e.js, s, 1, 10*time.Second)
	}
	read := func(stream string) (string, []event.Entry) {
		t.Helper()
		m := readStream(t, e.js, stream)[0]
		es, err := streams.Entries(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return nats.Header(m.Header).Get(streams.HdrFormat) + "\n" + string(m.Data), es
	}
	_, raw := read("LOGS") // the input entries: their times are the chunk's read time + index
	for _, tc := range []struct {
		stream, payload string
		fields          []map[string]any
		msgs            []string
	}{
		{"PARSED", "lines+json\n" + strings.Join(lines, "\n") + "\n" + `{"fields_from":"json"}` + "\n" + `{"fields_from":"json"}` + "\n" +
			`{"fields":{"_error":"json: not an object (starts with null)"}}` + "\n",
			[]map[string]any{{"level": "info", "n": int64(1)}, {"level": "error", "n": int64(2)}, {"_error": "json: not an object (starts with null)"}}, lines},
		{"ERRORS", "lines+json\n" + lines[1] + "\n" + fmt.Sprintf(`{"time":%q,"fields_from":"json"}`, raw[1].Time.Format(time.RFC3339Nano)) + "\n",
			[]map[string]any{{"level": "error", "n": int64(2)}}, lines[1:2]},
		{"TAGGED", "", []map[string]any{{"level": "info", "n": int64(1), "team": "core"}, {"level": "error", "n": int64(2), "team": "core"},
			{"_error": "json: not an object (starts with null)", "team": "core"}}, lines},
		{"LEGACY", "", []map[string]any{{"level": "info", "n": int64(1)}, {"level": "error", "n": int64(2)}}, lines[:2]},
	} {
		payload, es := read(tc.stream)
		if tc.payload != "" && payload != tc.payload {
			t.Errorf("%s stored\n%s\nwant\n%s", tc.stream, payload, tc.payload)
		}
		if tc.stream == "TAGGED" && (!strings.HasPrefix(payload, "lines+json\n") || strings.Contains(payload, "fields_from")) {
			t.Errorf("%s stored\n%s\nwant lines+json with the fields written", tc.stream, payload)
		}
		if tc.stream == "LEGACY" && !strings.HasPrefix(payload, "ndjson\n{\"time\":") {
			t.Errorf("%s stored\n%s\nwant NDJSON", tc.stream, payload)
		}
		var fields []map[string]any
		var msgs []string
		for i := range es {
			fields, msgs = append(fields, es[i].Fields), append(msgs, es[i].Message)
			if es[i].Host != "h1" || es[i].Kind != "file" || es[i].Source != "/f.log" || !es[i].Time.Equal(raw[slices.Index(lines, es[i].Message)].Time) {
				t.Errorf("%s entry %d: %+v", tc.stream, i, es[i])
			}
		}
		if !reflect.DeepEqual(fields, tc.fields) || !reflect.DeepEqual(msgs, tc.msgs) {
			t.Errorf("%s: messages %q, fields %v; want %q, %v", tc.stream, msgs, fields, tc.msgs, tc.fields)
		}
	}
}
