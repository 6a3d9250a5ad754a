package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/event"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/modules/pipeline"
	"github.com/logcap/logcap/processors"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A test-only step that panics on entries containing POISON: a bug in a step must not take
// the processor down.
func init() {
	processors.Register("test_panic", func(config.Options) (processors.Step, error) { return panicStep{}, nil })
}

type panicStep struct{}

func (panicStep) Apply(e *event.Entry) (bool, error) {
	if strings.Contains(e.Message, "POISON") {
		var m map[string]int
		m["boom"]++ // a real runtime panic: assignment to entry in nil map
	}
	return true, nil
}

type env struct {
	s      *server.Server
	js     jetstream.JetStream
	client *natsd.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	s := natstest.RunServer(t, nil)
	return connectEnv(t, s)
}

// connectEnv opens a connection of its own: two pipelines on two connections are two nodes.
func connectEnv(t testing.TB, s *server.Server) *env {
	t.Helper()
	nc, js := natstest.Connect(t, s)
	ctx := context.Background()
	for _, sp := range []streams.Spec{
		{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"},
		{Name: "DEADLETTER", Subjects: []string{"deadletter.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"},
	} {
		if _, err := streams.Provision(ctx, js, sp); err != nil {
			t.Fatal(err)
		}
	}
	c := natsd.NewClient(nc, js)
	c.MarkReady()
	return &env{s: s, js: js, client: c}
}

func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("node: test\nshutdown_timeout: 6s\n"+yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

var fastTuning = pipeline.Tuning{BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}

// run builds and starts a pipeline; it is stopped (and must stop in time) at the end of the test.
func run(t testing.TB, e *env, cfg *config.Config, tun pipeline.Tuning) *pipeline.Pipeline {
	t.Helper()
	pl, err := pipeline.New(cfg, e.client, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), prometheus.NewRegistry(), tun)
	if err != nil {
		t.Fatal(err)
	}
	if err := pl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, done := stoppedByTest.Load(pl); !done {
			stop(t, pl, cfg.ShutdownTimeout.D())
		}
	})
	return pl
}

// stoppedByTest holds the pipelines a test stopped itself (to check the stop's error).
var stoppedByTest sync.Map

func stop(t testing.TB, pl *pipeline.Pipeline, within time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	began := time.Now()
	if err := pl.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	return time.Since(began)
}

// publish writes lines as file chunks of perChunk lines each to one source's LOGS subject.
func publish(t testing.TB, js jetstream.JetStream, source string, lines []string, perChunk int) {
	t.Helper()
	publishIno(t, js, source, 2, lines, perChunk)
}

// publishIno is publish with the file's inode: sources of different files need their own
// (a chunk's msg id is the file identity and offset).
func publishIno(t testing.TB, js jetstream.JetStream, source string, ino uint64, lines []string, perChunk int) {
	t.Helper()
	ctx := context.Background()
	subj := streams.SourceSubject(streams.KindFile, "h1", source)
	last, err := streams.LastMsg(ctx, js, "LOGS", subj)
	if err != nil {
		t.Fatal(err)
	}
	var lastSeq uint64
	var off int64
	if last != nil {
		lastSeq = last.Sequence
		c, err := streams.DecodeChunk(last.Subject, last.Header, last.Data)
		if err != nil {
			t.Fatal(err)
		}
		off = c.File.End
	}
	p := streams.NewPublisher(js, "LOGS", subj, lastSeq)
	for i := 0; i < len(lines); i += perChunk {
		part := lines[i:min(i+perChunk, len(lines))]
		data := []byte(strings.Join(part, "\n") + "\n")
		c := &streams.Chunk{Kind: streams.KindFile, Host: "h1", Source: source, Data: data, Lines: len(part),
			ReadTime: time.Unix(1700000000, int64(i)).UTC(),
			File:     &streams.FilePos{Dev: 1, Ino: ino, Fingerprint: "ab", Start: off, End: off + int64(len(data))}}
		off += int64(len(data))
		if _, err := p.Publish(ctx, c.Msg()); err != nil {
			t.Fatalf("publish chunk at line %d: %v", i, err)
		}
	}
}

// storedMsg is one message of a stream, in order.
type storedMsg struct {
	Subject, ID string
	Seq         uint64
	Data        []byte
	Header      map[string][]string
}

func readStream(t testing.TB, js jetstream.JetStream, name string) []storedMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedMsg{Subject: m.Subject, ID: m.Header.Get("Nats-Msg-Id"), Seq: m.Sequence, Data: m.Data, Header: m.Header})
	}
	return out
}

func streamMsgs(js jetstream.JetStream, name string) (uint64, error) {
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(context.Background())
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func waitMsgs(t testing.TB, js jetstream.JetStream, stream string, want uint64, timeout time.Duration) {
	t.Helper()
	natstest.Eventually(t, timeout, func() error {
		n, err := streamMsgs(js, stream)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%s has %d messages, want %d", stream, n, want)
		}
		return nil
	})
}

// jsonLines are n JSON log lines of about 200 bytes; every 5th is at debug level.
func jsonLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		lvl := "info"
		if i%5 == 0 {
			lvl = "debug"
		}
		out[i] = fmt.Sprintf(`{"time":"2026-11-27T13:18:38Z","level":%q,"i":%d,"msg":"request handled","path":"/api/v1/items/%08d","password":"hunter%d","user":"user%05d@example.com","took_ms":%d}`,
			lvl, i, i, i, i%100000, i%997)
	}
	return out
}
