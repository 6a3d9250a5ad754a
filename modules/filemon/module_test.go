package filemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/logcap/logcap/config"
	"github.com/logcap/logcap/internal/natstest"
	"github.com/logcap/logcap/modules/natsd"
	"github.com/logcap/logcap/streams"
)

// The file monitor's own tests are beside it, in sources/filemon; here is what the module
// adds: running each `type: file` source of the config in fx.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestModule(t *testing.T) {
	s := natstest.RunServer(t, nil)
	nc, js := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := streams.Provision(ctx, js, streams.Spec{Name: "LOGS", Subjects: []string{"logs.>"}, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgSize: 8 << 20, Replicas: 1, DuplicateWindow: 2 * time.Minute, Storage: "file", Discard: "old"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "old\n")
	opts, err := config.OptionsFrom(map[string]any{"name": "app", "type": "file", "paths": []string{dir + "/*.log"}, "start_at": "beginning", "poll_interval": "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Node: "n1", Sources: []config.Component{{Name: "app", Type: "file", Options: opts}, {Name: "d", Type: "docker"}}}
	client := natsd.NewClient(nc, js)
	client.MarkReady()
	reg := prometheus.NewRegistry()
	app := fx.New(
		fx.Supply(cfg, client, zap.NewNop(), fx.Annotate(reg, fx.As(new(prometheus.Registerer)))),
		Module,
		fx.NopLogger,
	)
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, "new\n")
	var got []string
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if got = stored(t, js)[p]; len(got) < 2 {
			return fmt.Errorf("%d of 2 lines stored", len(got))
		}
		return nil
	})
	if strings.Join(got, "") != "old\nnew\n" {
		t.Fatalf("stored %q, want old and new once", got)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lines := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "logcap_filemon_lines_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "app" {
					lines = m.GetCounter().GetValue()
				}
			}
		}
	}
	if lines != 2 {
		t.Fatalf("logcap_filemon_lines_total{source=app} = %v, want 2", lines)
	}
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

// stored reads every chunk of LOGS back and returns the entries per source path.
func stored(t testing.TB, js jetstream.JetStream) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "LOGS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	if info.State.Msgs == 0 {
		return out
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		c, err := streams.DecodeChunk(msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		c.EachEntry(func(_ int, b []byte, _ bool) { out[c.Source] = append(out[c.Source], string(b)) })
	}
	return out
}
