package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/replay"
	"github.com/logcap/logcap/sinks"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func logsSpec() streams.Spec {
	return streams.Spec{
		Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old",
	}
}

// stored is what the test published: one message per chunk, as the stream holds it.
type stored struct {
	seq  uint64
	subj string
	data []byte
	time time.Time
}

// fixture publishes chunks alternately for two files and a container, like a monitor does.
type fixture struct {
	js   jetstream.JetStream
	pubs map[string]*streams.Publisher
	offs map[string]int64
	msgs []stored
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := natstest.RunServer(t, nil)
	_, js := natstest.Connect(t, s)
	if _, err := streams.Provision(context.Background(), js, logsSpec()); err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, pubs: map[string]*streams.Publisher{}, offs: map[string]int64{}}
}

var sources = []string{"/var/log/a.log", "/var/log/b.log", "nginx"}

// publish stores the i-th chunk: 1 to 3 lines, some with bytes that are not UTF-8.
func (f *fixture) publish(t *testing.T, i int) stored {
	t.Helper()
	src := sources[i%len(sources)]
	c := &streams.Chunk{Host: "h1", Source: src, ReadTime: time.Unix(1700000000+int64(i), 0).UTC()}
	var data []byte
	lines := 1 + i%3
	for l := range lines {
		if c.Source == "nginx" {
			data = fmt.Appendf(data, "2026-11-27T10:00:%02d.%09dZ GET /%d/%d\n", i%60, l, i, l)
		} else {
			data = fmt.Appendf(data, "chunk %d line %d \xff\x00 tail\n", i, l)
		}
	}
	c.Data, c.Lines = data, lines
	if src == "nginx" {
		c.Kind = streams.KindDocker
		c.Docker = &streams.DockerPos{ContainerID: "c1", Stream: "stdout", FirstTS: time.Unix(int64(i), 0), LastTS: time.Unix(int64(i), 0), LastTSCount: lines}
	} else {
		c.Kind = streams.KindFile
		c.File = &streams.FilePos{Dev: 1, Ino: uint64(10 + i%len(sources)) /* one inode per file: the msg id holds dev+ino, not the path */, Fingerprint: "ab", Start: f.offs[src], End: f.offs[src] + int64(len(data))}
		f.offs[src] = c.File.End
	}
	m := c.Msg()
	p := f.pubs[m.Subject]
	if p == nil {
		p = streams.NewPublisher(f.js, "LOGS", m.Subject, 0)
		f.pubs[m.Subject] = p
	}
	ack, err := p.Publish(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Duplicate {
		t.Fatalf("chunk %d: a duplicate of seq %d", i, ack.Sequence)
	}
	raw, err := f.js.Stream(context.Background(), "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	got, err := raw.GetMsg(context.Background(), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	st := stored{seq: ack.Sequence, subj: m.Subject, data: data, time: got.Time}
	f.msgs = append(f.msgs, st)
	return st
}

// collect is an Output that keeps every message and can act on each (publish more, cancel).
type collect struct {
	msgs    []replay.Msg
	onAdd   func(n int)
	flushes int
}

func (c *collect) Add(_ context.Context, m replay.Msg) (int, error) {
	c.msgs = append(c.msgs, m)
	if c.onAdd != nil {
		c.onAdd(len(c.msgs))
	}
	return bytes.Count(m.Data, []byte("\n")), nil
}

func (c *collect) Flush(context.Context) error { c.flushes++; return nil }

func seqs(ms []replay.Msg) []uint64 {
	out := []uint64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func want(all []stored, keep func(stored) bool) []uint64 {
	out := []uint64{}
	for _, s := range all {
		if keep(s) {
			out = append(out, s.seq)
		}
	}
	return out
}

// Start points, ends and filters select exactly the messages they name, and a range with
// nothing in it ends at once instead of waiting for messages that will not come.
func TestBoundaries(t *testing.T) {
	f := newFixture(t)
	for i := range 12 {
		f.publish(t, i)
	}
	m := f.msgs
	subjA := streams.SourceSubject(streams.KindFile, "h1", "/var/log/a.log")
	cases := []struct {
		name string
		spec replay.Spec
		keep func(stored) bool
	}{
		{"all", replay.Spec{}, func(stored) bool { return true }},
		{"start-seq 5", replay.Spec{StartSeq: 5}, func(s stored) bool { return s.seq >= 5 }},
		{"start-seq last", replay.Spec{StartSeq: 12}, func(s stored) bool { return s.seq == 12 }},
		{"start-seq past end", replay.Spec{StartSeq: 13}, func(stored) bool { return false }},
		{"since = time of seq 4", replay.Spec{Since: m[3].time}, func(s stored) bool { return !s.time.Before(m[3].time) }},
		{"since 1ns after seq 4", replay.Spec{Since: m[3].time.Add(1)}, func(s stored) bool { return s.time.After(m[3].time) }},
		{"since after the last", replay.Spec{Since: m[11].time.Add(time.Second)}, func(stored) bool { return false }},
		{"until = time of seq 7", replay.Spec{Until: m[6].time}, func(s stored) bool { return !s.time.After(m[6].time) }},
		{"until 1ns before seq 7", replay.Spec{Until: m[6].time.Add(-1)}, func(s stored) bool { return s.time.Before(m[6].time) }},
		{"since seq 3 until seq 9", replay.Spec{Since: m[2].time, Until: m[8].time}, func(s stored) bool {
			return !s.time.Before(m[2].time) && !s.time.After(m[8].time)
		}},
		{"until before the first", replay.Spec{Until: m[0].time.Add(-time.Second)}, func(stored) bool { return false }},
		{"subject a.log", replay.Spec{Subject: subjA}, func(s stored) bool { return s.subj == subjA }},
		{"subject a.log from seq 5", replay.Spec{Subject: subjA, StartSeq: 5}, func(s stored) bool { return s.subj == subjA && s.seq >= 5 }},
		{"subject docker", replay.Spec{Subject: "logs.docker.>"}, func(s stored) bool { return s.subj[:11] == "logs.docker" }},
		{"subject nothing", replay.Spec{Subject: "logs.file.other.>"}, func(stored) bool { return false }},
		{"subject a.log, only older than start", replay.Spec{Subject: subjA, StartSeq: 11}, func(stored) bool { return false }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out collect
			st, err := replay.Run(ctx, f.js, tc.spec, &out, nil)
			if err != nil {
				t.Fatal(err)
			}
			w := want(m, tc.keep)
			if fmt.Sprint(seqs(out.msgs)) != fmt.Sprint(w) {
				t.Fatalf("replayed seqs %v, want %v", seqs(out.msgs), w)
			}
			if st.Messages != int64(len(w)) || st.EndSeq != 12 {
				t.Errorf("stats %+v", st)
			}
			if len(w) > 0 && (st.FirstSeq != w[0] || st.LastSeq != w[len(w)-1]) {
				t.Errorf("stats %+v, want seq %d..%d", st, w[0], w[len(w)-1])
			}
			for _, got := range out.msgs {
				if !bytes.Equal(got.Data, m[got.Seq-1].data) || got.Subject != m[got.Seq-1].subj {
					t.Errorf("seq %d: %s %q, stored %s %q", got.Seq, got.Subject, got.Data, m[got.Seq-1].subj, m[got.Seq-1].data)
				}
			}
		})
	}
}

// Without --follow the replay ends at the stream's last sequence as it was when the replay
// began: messages stored meanwhile are not replayed.
func TestEndsAtLastSeqAtStart(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		f.publish(t, i)
	}
	out := collect{onAdd: func(n int) { f.publish(t, 100+n) }}
	st, err := replay.Run(context.Background(), f.js, replay.Spec{}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(out.msgs)) != "[1 2 3 4 5]" || st.EndSeq != 5 {
		t.Fatalf("replayed %v (stats %+v), want [1 2 3 4 5]", seqs(out.msgs), st)
	}
	if len(f.msgs) != 10 {
		t.Fatalf("published %d", len(f.msgs))
	}
	// A filtered replay whose last match is older than new messages ends too.
	out = collect{onAdd: func(n int) { f.publish(t, 200+n) }}
	if _, err := replay.Run(context.Background(), f.js, replay.Spec{Subject: "logs.docker.>"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(out.msgs)) != "[3 6 9]" {
		t.Fatalf("docker replay %v, want [3 6 9]", seqs(out.msgs))
	}
}

// --follow reads what is stored after it began, and a cancel ends it cleanly (nil error),
// with what it read flushed.
func TestFollowStopsOnCancel(t *testing.T) {
	f := newFixture(t)
	f.publish(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := collect{onAdd: func(n int) {
		if n < 20 {
			f.publish(t, n) // stored while the replay waits for it
		} else {
			cancel()
		}
	}}
	began := time.Now()
	st, err := replay.Run(ctx, f.js, replay.Spec{Follow: true}, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Interrupted || st.Messages != 20 || len(out.msgs) != 20 || out.flushes == 0 {
		t.Fatalf("stats %+v, %d messages, %d flushes", st, len(out.msgs), out.flushes)
	}
	t.Logf("followed 20 messages, each stored after the replay asked for it, in %v", time.Since(began))
}

// Without --follow, a cancel is an error: the range was not replayed in full.
func TestCancelWithoutFollowIsAnError(t *testing.T) {
	f := newFixture(t)
	for i := range 3 {
		f.publish(t, i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := collect{onAdd: func(int) { cancel() }}
	st, err := replay.Run(ctx, f.js, replay.Spec{}, &out, nil)
	if !errors.Is(err, context.Canceled) || !st.Interrupted {
		t.Fatalf("err %v, stats %+v", err, st)
	}
}

func TestStreamNotFound(t *testing.T) {
	f := newFixture(t)
	_, err := replay.Run(context.Background(), f.js, replay.Spec{Stream: "NOPE"}, &collect{}, nil)
	if !errors.Is(err, replay.ErrStreamNotFound) {
		t.Fatalf("err %v", err)
	}
}

// A file sink (format raw) fed by a replay holds exactly the bytes of the stored chunks.
func TestIntoFileSink(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		f.publish(t, i)
	}
	path := filepath.Join(t.TempDir(), "out.log")
	opts, err := config.OptionsFrom(map[string]any{"path": path, "format": "raw"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.New("file", "archive", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := &replay.SinkOutput{Sink: s, Name: "archive", MaxEntries: 7}
	st, err := replay.Run(context.Background(), f.js, replay.Spec{StartSeq: 4, Until: f.msgs[24].time}, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wantData []byte
	var entries int64
	for _, m := range f.msgs[3:25] {
		wantData = append(wantData, m.data...)
		entries += int64(bytes.Count(m.data, []byte("\n")))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantData) {
		t.Fatalf("file sink holds\n%q\nwant\n%q", got, wantData)
	}
	if st.Entries != entries || st.Messages != 22 || st.FirstSeq != 4 || st.LastSeq != 25 {
		t.Fatalf("stats %+v, want %d entries", st, entries)
	}
	t.Log(st.Summary())
}

// flaky is a sink that fails as told: it stands in for a destination's failures, which the
// real sinks' own tests produce against real servers.
type flaky struct {
	fail   []error // the error of each Write in turn; nil or past the end: success
	writes [][]string
}

func (s *flaky) Write(_ context.Context, b []sinks.Record) error {
	ids := []string{}
	for _, r := range b {
		ids = append(ids, r.ID())
	}
	s.writes = append(s.writes, ids)
	if n := len(s.writes) - 1; n < len(s.fail) {
		return s.fail[n]
	}
	return nil
}
func (s *flaky) Check(context.Context) error { return nil }
func (s *flaky) Close() error                { return nil }

// The sink output retries transient errors, retries only the failed records of a partial
// failure, and stops at a permanent error or after MaxAttempts.
func TestSinkRetries(t *testing.T) {
	f := newFixture(t)
	for i := range 2 {
		f.publish(t, i) // seq 1: a.log, 1 line; seq 2: b.log, 2 lines
	}
	transient := errors.New("503")
	cases := []struct {
		name    string
		fail    []error
		wantErr error
		writes  string
	}{
		{"ok", nil, nil, "[[LOGS-1-0 LOGS-2-0 LOGS-2-1]]"},
		{"transient twice", []error{transient, transient}, nil,
			"[[LOGS-1-0 LOGS-2-0 LOGS-2-1] [LOGS-1-0 LOGS-2-0 LOGS-2-1] [LOGS-1-0 LOGS-2-0 LOGS-2-1]]"},
		{"partial", []error{&sinks.PartialError{Failed: map[int]error{2: transient, 0: transient}}}, nil,
			"[[LOGS-1-0 LOGS-2-0 LOGS-2-1] [LOGS-1-0 LOGS-2-1]]"},
		{"permanent", []error{sinks.Permanent(errors.New("400"))}, sinks.ErrPermanent, "[[LOGS-1-0 LOGS-2-0 LOGS-2-1]]"},
		{"partial permanent", []error{&sinks.PartialError{Failed: map[int]error{1: sinks.Permanent(errors.New("mapping"))}}}, sinks.ErrPermanent,
			"[[LOGS-1-0 LOGS-2-0 LOGS-2-1]]"},
		{"gives up", []error{transient, transient, transient, transient}, transient,
			"[[LOGS-1-0 LOGS-2-0 LOGS-2-1] [LOGS-1-0 LOGS-2-0 LOGS-2-1] [LOGS-1-0 LOGS-2-0 LOGS-2-1]]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &flaky{fail: tc.fail}
			retries := 0
			out := &replay.SinkOutput{Sink: s, Name: "x", MaxAttempts: 3, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
				OnRetry: func(int, error, time.Duration) { retries++ }}
			_, err := replay.Run(context.Background(), f.js, replay.Spec{}, out, nil)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got := fmt.Sprint(s.writes); got != tc.writes {
				t.Fatalf("writes %s, want %s", got, tc.writes)
			}
		})
	}
}

// The progress bar draws entries and megabytes, ends with the summary line, and leaves no
// goroutine behind, also for --follow's unknown length (goleak checks at exit).
func TestBar(t *testing.T) {
	f := newFixture(t)
	for i := range 6 {
		f.publish(t, i)
	}
	for _, follow := range []bool{false, true} {
		var buf bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		out := collect{onAdd: func(n int) {
			if n == 6 {
				cancel()
			}
		}}
		st, err := replay.Run(ctx, f.js, replay.Spec{Follow: follow}, &out, replay.NewBar(&buf))
		cancel()
		if follow && err != nil || !follow && err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		s := buf.String()
		if !strings.Contains(s, "LOGS ") || !strings.Contains(s, " entries ") || !strings.HasSuffix(s, st.Summary()+"\n") {
			t.Fatalf("follow=%v: bar output %q", follow, s)
		}
	}
}

// MaxEntries bounds every Write, also when one message (a 1 MiB chunk) holds more entries
// than that. (Filed: a request of 5,242 records with max_entries 1000.)
func TestSinkOutputMaxEntriesBoundsEachWrite(t *testing.T) {
	lines := make([]string, 5242)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d", i)
	}
	data := []byte(strings.Join(lines, "\n") + "\n")
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h", Source: "/big.log", Data: data, Lines: len(lines), ReadTime: time.Unix(1, 0),
		File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "ab", End: int64(len(data))}}
	m := c.Msg()
	s := &flaky{}
	out := &replay.SinkOutput{Sink: s, Name: "hook", MaxEntries: 1000}
	if _, err := out.Add(context.Background(), replay.Msg{Stream: "LOGS", Subject: m.Subject, Header: m.Header, Data: m.Data, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := out.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, w := range s.writes {
		n += len(w)
		if len(w) > 1000 {
			t.Errorf("write %d held %d records, want ≤ 1000", i, len(w))
		}
	}
	if n != len(lines) {
		t.Errorf("%d records written, want %d", n, len(lines))
	}
}
