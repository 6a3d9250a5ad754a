package filemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/lifecycle"
	core "github.com/logcap/logcap/sources/filemon"
	"github.com/logcap/logcap/streams"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type harness struct {
	t    testing.TB
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	dir  string
	logs *observer.ObservedLogs
	log  *zap.Logger
	met  *core.Metrics // nil: the monitor makes its own
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	s := natstest.RunServer(t, nil)
	nc, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	return &harness{t: t, srv: s, nc: nc, js: js, dir: t.TempDir(), logs: logs, log: zap.New(core)}
}

type running struct {
	m *core.Monitor
	g *lifecycle.Group
}

func (h *harness) opts(o core.Options) core.Options {
	h.t.Helper()
	if o.PollInterval == 0 {
		o.PollInterval = 100 * 1e6 // keep tests quick: the poller is also the fallback here
	}
	o, err := o.WithDefaults()
	if err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) start(o core.Options) *running {
	h.t.Helper()
	m, err := core.New("app", h.opts(o), core.Deps{JS: h.js, Stream: "LOGS", Host: "h1", Log: h.log, Metrics: h.met})
	if err != nil {
		h.t.Fatal(err)
	}
	g := lifecycle.New("filemon", h.log)
	for _, t := range m.Tasks() {
		g.Go("filemon: "+t.Name, t.Run)
	}
	r := &running{m: m, g: g}
	h.t.Cleanup(func() { r.stop(h.t) })
	select {
	case <-m.Ready():
	case <-time.After(20 * time.Second):
		h.t.Fatal("monitor not ready")
	}
	return r
}

func (r *running) stop(t testing.TB) {
	if r.g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.g.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
	r.m.Close()
	r.g = nil
}

func (h *harness) path(name string) string {
	p := filepath.Join(h.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	return p
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func numbered(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %07d\n", prefix, i)
	}
	return b.String()
}

// stored reads every chunk of LOGS back, checks each subject's chunks chain (per file
// identity: each chunk starts where the previous one of that file ended, or at 0 after a
// truncation) and returns the entries per source path.
func (h *harness) stored() map[string][]string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, "LOGS")
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]string{}
	if info.State.Msgs == 0 {
		return out
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	type key struct {
		src      string
		dev, ino uint64
	}
	ends := map[key]int64{}
	for got := uint64(0); got < info.State.Msgs; {
		batch, err := cons.Fetch(int(min(info.State.Msgs-got, 200)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		for msg := range batch.Messages() {
			got++
			c, err := streams.DecodeChunk(msg.Subject(), msg.Headers(), msg.Data())
			if err != nil {
				h.t.Fatal(err)
			}
			k := key{c.Source, c.File.Dev, c.File.Ino}
			if e, ok := ends[k]; ok && c.File.Start != e && c.File.Start != 0 {
				h.t.Errorf("%s: chunk starts at %d, previous ended at %d: gap or overlap", c.Source, c.File.Start, e)
			}
			ends[k] = c.File.End
			c.EachEntry(func(_ int, b []byte, cont bool) {
				s := string(b)
				if cont {
					s += "+"
				}
				out[c.Source] = append(out[c.Source], s)
			})
		}
		if batch.Error() != nil {
			h.t.Fatal(batch.Error())
		}
	}
	return out
}

// waitLines waits until source has n entries stored and returns them.
func (h *harness) waitLines(src string, n int, timeout time.Duration) []string {
	h.t.Helper()
	var got []string
	natstest.CheckFor(h.t, timeout, 50*time.Millisecond, func() error {
		got = h.stored()[src]
		if len(got) < n {
			return fmt.Errorf("%s: %d of %d entries", src, len(got), n)
		}
		return nil
	})
	return got
}

// exactlyOnce checks that got holds every line of want once, in order.
func exactlyOnce(t *testing.T, got []string, want string) {
	t.Helper()
	w := strings.SplitAfter(want, "\n")
	if w[len(w)-1] == "" {
		w = w[:len(w)-1]
	}
	if slices.Equal(got, w) {
		return
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	var dup, missing []string
	for _, l := range w {
		switch seen[l] {
		case 0:
			missing = append(missing, l)
		case 1:
		default:
			dup = append(dup, l)
		}
	}
	sort.Strings(dup)
	t.Fatalf("got %d entries, want %d: %d missing (first %q), %d duplicated (first %q)", len(got), len(w), len(missing), first(missing), len(dup), first(dup))
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func stringField(k, v string) zapcore.Field { return zap.String(k, v) }
