package streams_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func logsSpec() streams.Spec {
	return streams.Spec{
		Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30,
		MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old",
	}
}

func fileChunk(src string, start int64, lines ...string) *streams.Chunk {
	data := []byte(strings.Join(lines, ""))
	return &streams.Chunk{
		Kind: streams.KindFile, Host: "h1", Source: src, Data: data, Lines: len(lines),
		ReadTime: time.Unix(1700000000, 5).UTC(),
		File:     &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "abcd", Start: start, End: start + int64(len(data))},
	}
}

// 10,000 chunks go in through a Publisher; the server restarts on the same store; a durable
// consumer reads every one back, in order, none twice.
func TestPublishRestartConsume(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const n = 10000
	src := "/var/log/app.log"
	subj := streams.SourceSubject(streams.KindFile, "h1", src)

	func() {
		s := natstest.RunServer(t, natstest.Options(dir))
		_, js := natstest.Connect(t, s)
		if _, err := streams.Provision(ctx, js, logsSpec()); err != nil {
			t.Fatal(err)
		}
		p := streams.NewPublisher(js, "LOGS", subj, 0)
		var off int64
		for i := range n {
			c := fileChunk(src, off, fmt.Sprintf("line %d\n", i))
			off = c.File.End
			ack, err := p.Publish(ctx, c.Msg())
			if err != nil {
				t.Fatalf("chunk %d: %v", i, err)
			}
			if ack.Duplicate || ack.Sequence != uint64(i+1) {
				t.Fatalf("chunk %d: ack %+v", i, ack)
			}
		}
		s.Shutdown()
		s.WaitForShutdown()
	}()

	s := natstest.RunServer(t, natstest.Options(dir))
	_, js := natstest.Connect(t, s)
	cons, err := streams.EnsureConsumer(ctx, js, streams.ConsumerSpec{
		Stream: "LOGS", Durable: "reader", Filters: []string{"logs.>"}, AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for next < n {
		msgs, err := streams.Fetch(ctx, cons, streams.FetchOpts{MaxMsgs: 500, MaxBytes: 1 << 20, MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Fatalf("fetch returned nothing after %d of %d", next, n)
		}
		for _, m := range msgs {
			c, err := streams.DecodeChunk(m.Subject(), m.Headers(), m.Data())
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("line %d\n", next)
			if string(c.Data) != want || c.Source != src {
				t.Fatalf("message %d: got %q from %q, want %q", next, c.Data, c.Source, want)
			}
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	msgs, err := streams.Fetch(ctx, cons, streams.FetchOpts{MaxMsgs: 10, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	if err != nil || len(msgs) != 0 {
		t.Fatalf("after all: %d more messages, err %v", len(msgs), err)
	}
}

// A second publisher for the same source is fenced, and the first one's lost ack is recovered
// from the stream instead of publishing twice.
func TestPublisherFencingAndResync(t *testing.T) {
	ctx := context.Background()
	s := natstest.RunServer(t, nil)
	_, js := natstest.Connect(t, s)
	if _, err := streams.Provision(ctx, js, logsSpec()); err != nil {
		t.Fatal(err)
	}
	src := "/a.log"
	subj := streams.SourceSubject(streams.KindFile, "h1", src)
	a := streams.NewPublisher(js, "LOGS", subj, 0)
	b := streams.NewPublisher(js, "LOGS", subj, 0)
	if _, err := a.Publish(ctx, fileChunk(src, 0, "a1\n").Msg()); err != nil {
		t.Fatal(err)
	}
	// (Same id as a1 would be a duplicate of identical bytes: JetStream dedup answers first.)
	_, err := b.Publish(ctx, fileChunk(src, 100, "b1\n", "b2\n").Msg())
	if !errors.Is(err, streams.ErrFenced) {
		t.Fatalf("second writer: want ErrFenced, got %v", err)
	}
	// a's next chunk still goes in: the fenced writer stored nothing.
	ack, err := a.Publish(ctx, fileChunk(src, 3, "a2\n").Msg())
	if err != nil || ack.Sequence != 2 {
		t.Fatalf("a2: %+v %v", ack, err)
	}
	// The same chunk again (an ack lost, a retry): a duplicate, not a second copy.
	ack, err = a.Publish(ctx, fileChunk(src, 3, "a2\n").Msg())
	if err != nil || ack.Sequence != 2 || !ack.Duplicate {
		t.Fatalf("a2 again: %+v %v", ack, err)
	}
	// A restarted monitor that lost its state learns the position from the stream.
	last, err := streams.LastMsg(ctx, js, "LOGS", subj)
	if err != nil || last == nil {
		t.Fatal(last, err)
	}
	c, err := streams.DecodeChunk(last.Subject, last.Header, last.Data)
	if err != nil || c.File.End != 6 {
		t.Fatalf("last chunk %+v %v", c, err)
	}
	// Retention removed everything on the subject: the publisher starts the subject afresh.
	st, _ := js.Stream(ctx, "LOGS")
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		t.Fatal(err)
	}
	ack, err = a.Publish(ctx, fileChunk(src, 6, "a3\n").Msg())
	if err != nil || ack.Sequence != 3 {
		t.Fatalf("after purge: %+v %v", ack, err)
	}
}

func TestProvision(t *testing.T) {
	ctx := context.Background()
	s := natstest.RunServer(t, nil)
	_, js := natstest.Connect(t, s)
	spec := logsSpec()
	if _, err := streams.Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	spec.MaxAge = 2 * time.Hour // compatible: updated in place
	st, err := streams.Provision(ctx, js, spec)
	if err != nil || st.CachedInfo().Config.MaxAge != 2*time.Hour {
		t.Fatalf("update: %v", err)
	}
	spec.Storage = "memory"
	_, err = streams.Provision(ctx, js, spec)
	if err == nil || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("storage change: want an error naming storage, got %v", err)
	}
	if _, err := streams.Check(ctx, js, logsSpec()); err != nil {
		t.Fatal(err)
	}
	other := logsSpec()
	other.Subjects = []string{"other.>"}
	if _, err := streams.Check(ctx, js, other); err == nil {
		t.Fatal("check: want error for uncovered subject")
	}
}

func TestChunkRoundTrip(t *testing.T) {
	for _, c := range []*streams.Chunk{
		fileChunk("/x/y.log", 10, "a\n", "bb\r\n", "tail"),
		{Kind: streams.KindFile, Host: "h", Source: "/m.log", Data: []byte("ERR x\n  at a\n  at b\nnext\n"), Lines: 2,
			Entries: []int{20, 5}, File: &streams.FilePos{Dev: 3, Ino: 4, Fingerprint: "ff", Start: 0, End: 25}},
		{Kind: streams.KindFile, Host: "h", Source: "/s.log", Data: []byte("aaaabbbbcc\n"), Lines: 3,
			Entries: []int{4, 4, 3}, Continued: []int{0, 1}, File: &streams.FilePos{Start: 0, End: 11}},
		{Kind: streams.KindDocker, Host: "h", Source: "nginx", Data: []byte("2026-11-27T13:18:38.000000001Z hi\n"), Lines: 1,
			Docker: &streams.DockerPos{ContainerID: "abc", Stream: "stderr", FirstTS: time.Unix(5, 1).UTC(), LastTS: time.Unix(5, 1).UTC(), LastTSCount: 2}},
	} {
		m := c.Msg()
		got, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		var a, b []string
		c.EachEntry(func(i int, e []byte, cont bool) { a = append(a, string(e)+strconv.FormatBool(cont)) })
		got.EachEntry(func(i int, e []byte, cont bool) { b = append(b, string(e)+strconv.FormatBool(cont)) })
		if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != c.Lines {
			t.Fatalf("entries %q vs %q (lines %d)", a, b, c.Lines)
		}
		if got.MsgID() != c.MsgID() || got.Source != c.Source || got.Kind != c.Kind {
			t.Fatalf("decoded %+v, want %+v", got, c)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add("logs.file.h./a%2Elog", "3,4", "0", []byte("abcdefg"))
	f.Add("logs.docker.h.n", "", "", []byte("x\ny\n"))
	f.Add("logs.file.h.x", "1,1,1", "5", []byte("abc"))
	f.Fuzz(func(t *testing.T, subj, entries, cont string, data []byte) {
		m := (&streams.Chunk{Kind: "file", Host: "h", Source: "s", Data: data}).Msg()
		m.Subject = subj
		m.Header.Set(streams.HdrEntries, entries)
		m.Header.Set(streams.HdrContinued, cont)
		c, err := streams.DecodeChunk(m.Subject, m.Header, m.Data)
		if err != nil {
			return
		}
		total := 0
		c.EachEntry(func(i int, e []byte, _ bool) { total += len(e) })
		if total != len(data) {
			t.Fatalf("entries cover %d of %d bytes", total, len(data))
		}
	})
}

// TestFileMsgGeneration: a file chunk's msg id names its file's generation from the first
// truncation on, so the same offset and first bytes read again are not taken for a retry.
func TestFileMsgGeneration(t *testing.T) {
	c := &streams.Chunk{Kind: streams.KindFile, Host: "h1", Source: "/var/log/app.log", Lines: 1, Data: []byte("x\n"),
		File: &streams.FilePos{Dev: 1, Ino: 2, Fingerprint: "fp", Start: 0, End: 2}}
	for _, tc := range []struct {
		gen  int
		want string
	}{
		{0, "f:h1:1:2:fp:0"},
		{1, "f:h1:1:2:fp:0:g1"},
		{3, "f:h1:1:2:fp:0:g3"},
	} {
		if got := c.FileMsg(tc.gen).Header.Get(streams.HdrMsgID); got != tc.want {
			t.Errorf("generation %d: msg id %q, want %q", tc.gen, got, tc.want)
		}
	}
}

// TestPositionKeys: the positions KV's keys and record, as logcap has always written them
// (a restart reads what the previous version wrote).
func TestPositionKeys(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{streams.PositionKey("node-1", 64769, 1234), "pos.node-1.64769.1234"},
		{streams.PositionKey("web.example.com", 1, 2), "pos.web=2Eexample=2Ecom.1.2"},
		{streams.PositionKey("", 1, 2), "pos.=.1.2"},
		{streams.PositionsOf("a b"), "pos.a=20b.>"},
		{streams.SourceMarkerKey("h1", "app logs"), "source.h1.app=20logs"},
		{string(streams.FilePosition{Source: "/var/log/app.log", FP: "abc", End: 42}.Encode()), `{"source":"/var/log/app.log","fp":"abc","end":42}`},
		{string(streams.FilePosition{Source: "/l/a.gz", FP: "f", End: 9, GzipDone: true, GzipSize: 5}.Encode()), `{"source":"/l/a.gz","fp":"f","end":9,"gzip_done":true,"gzip_size":5}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	p, err := streams.DecodeFilePosition([]byte(`{"source":"/l/a.gz","fp":"f","end":9,"gzip_done":true,"gzip_size":5}`))
	if err != nil || *p != (streams.FilePosition{Source: "/l/a.gz", FP: "f", End: 9, GzipDone: true, GzipSize: 5}) {
		t.Errorf("decode: %+v, %v", p, err)
	}
	if _, err := streams.DecodeFilePosition([]byte("{")); err == nil || !strings.Contains(err.Error(), "file position") {
		t.Errorf("bad record: %v", err)
	}
}
